// Whether a word equal to the task metadata heads a task that is alive: what the
// runtime guarantees of every live task, checked on the object's own header before
// the reflection library's view of it is believed.
//
// The runtime sets IsComplete in a task's status when it returns, and a task object
// is freed only after its reference count has gone through deinit (IsDeiniting). So
// the bytes of a task that has ended, wherever they survive (a slab of its parent's
// allocator, a malloc chunk reused in part), carry one of the two; memory reused by
// something else fails the rest: a job kind that is not Task, an id the runtime has
// not given out yet (its counter, AsyncTask::setTaskId's NextId, read after the
// tasks), a resume function outside code, a context outside writable memory, or
// status bits that disagree with what the reflection library reads of the same task.
//
// Offsets: the runtime's layout version 1 (TaskRuntime checks it), x86_64 without
// priority escalation, as on Linux (include/swift/ABI/Task.h, MetadataValues.h and
// the reflection library's RuntimeInternals.h; RefCount.h for the header word):
//   HeapObject.RefCounts at 8: IsDeiniting bit 32, UseSlowRC bit 63 (a side table
//   then holds the counts: not read);
//   Job.Flags (uint32) at 32: the kind in bits 0-7 (0: Task); Job.Id (uint32) at 36;
//   Job.ResumeTask at 56; AsyncTask.ResumeContext at 64;
//   PrivateStorage.Status flags (uint32) at 96: priority 0-7, IsCancelled 0x100,
//   IsRunning 0x800, IsEnqueued 0x1000, IsComplete 0x2000;
//   PrivateStorage.Id (uint32, the id's upper half) at 144.

struct TaskHeader: Sendable, Equatable {
    static let size = 148
    static let deinitingBit: UInt64 = 1 << 32
    static let slowReferenceCountBit: UInt64 = 1 << 63
    static let cancelledBit: UInt32 = 0x100
    static let runningBit: UInt32 = 0x800
    static let enqueuedBit: UInt32 = 0x1000
    static let completeBit: UInt32 = 0x2000

    let referenceCounts: UInt64
    let jobFlags: UInt32
    let id: UInt64
    let resumeFunction: UInt64
    let resumeContext: UInt64
    let statusFlags: UInt32

    init?(memory: TargetMemory, at address: UInt64) {
        guard let bytes = Ptrace.readMemory(memory, at: address, count: Self.size) else { return nil }
        self.init(bytes)
    }

    init(_ bytes: [UInt8]) {
        func word32(_ offset: Int) -> UInt32 {
            (0..<4).reversed().reduce(UInt32(0)) { $0 << 8 | UInt32(bytes[offset + $1]) }
        }
        referenceCounts = littleEndianWord(bytes, at: 8)
        jobFlags = word32(32)
        id = UInt64(word32(144)) << 32 | UInt64(word32(36))
        resumeFunction = littleEndianWord(bytes, at: 56)
        resumeContext = littleEndianWord(bytes, at: 64)
        statusFlags = word32(96)
    }

    var isDeiniting: Bool { referenceCounts & Self.slowReferenceCountBit == 0 && referenceCounts & Self.deinitingBit != 0 }
    var isTaskJob: Bool { jobFlags & 0xff == 0 }
    var hasReturned: Bool { statusFlags & Self.completeBit != 0 }
}

/// What a task-like word turned out to be.
enum TaskLife: Equatable, Sendable {
    case live
    /// Returned: its object lives on while something (a Task handle) holds it.
    case returned
    /// Not a task alive now: freed, being freed, or other data where one was.
    case dead
    /// A live task whose header changed between two reads (it ran meanwhile).
    case changing
}

extension TaskHeader {
    /// Whether the header is one the runtime could have made for a task that has not
    /// been destroyed (its id is checked against the runtime's counter apart, once
    /// every task has been read).
    func life(map: MemoryMap, memory: TargetMemory) -> TaskLife {
        guard !isDeiniting, isTaskJob, id != 0 else { return .dead }
        guard map.region(containing: resumeFunction)?.isExecutable == true else { return .dead }
        let context = map.region(containing: resumeContext)
        guard resumeContext & 0xf == 0, context?.isWritable == true || (context == nil && Ptrace.readMemory(memory, at: resumeContext, count: 16) != nil)
        else { return .dead }
        return hasReturned ? .returned : .live
    }

    /// Whether the reflection library read the same task: its id and status bits.
    func agrees(with info: TaskInfo) -> Bool {
        info.id == id
            && info.isCancelled == (statusFlags & Self.cancelledBit != 0)
            && info.isEnqueued == (statusFlags & Self.enqueuedBit != 0)
            && (info.isRunning.map { $0 == (statusFlags & Self.runningBit != 0) } ?? true)
    }
}

enum TaskCounter {
    /// AsyncTask::setTaskId's counter: the next id the runtime gives out.
    static let nextIDSymbol = "_ZZN5swift9AsyncTask9setTaskIdEvE6NextId"
}
