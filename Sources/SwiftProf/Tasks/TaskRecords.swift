// What a task's status records say that the reflection library does not return:
// its name (`Task(name:)`, Swift 6.2 and later) and what it depends on (the actor
// an enqueued task waits for, the task an `await task.value` waits for). Read from
// the task object by the layout of the runtime whose layout version TaskProfiler
// has checked (6.3's; offsets from the runtime's include/swift/ABI/Task.h,
// TaskStatus.h, MetadataValues.h and the reflection library's RuntimeInternals.h;
// x86_64, without priority escalation, as on Linux):
//   Job.Flags (uint32) at 32: bit 30 (Task_HasInitialTaskName) says a name was given;
//   ActiveTaskStatus.Record (the innermost status record) at 104;
//   a status record: Flags (the kind in bits 0-7) at 0, Parent at 8;
//   kind 6, TaskName: a C string pointer at 16;
//   kind 0, TaskDependency: what it waits on at 16 (a task, or an executor's identity,
//   the actor object), the kind of dependency (uint32) at 32: 1 on a task, 4 enqueued
//   on an executor.
// Every read is checked: a task whose bytes say otherwise has no name or dependency.

struct TaskRecords: Sendable, Hashable {
    var name: String?
    /// The task object an `await` of another task's value waits for.
    var awaitedTask: UInt64?
    /// The executor identity (an actor object) an enqueued task waits for.
    var enqueuedOn: UInt64?

    static let jobFlagsOffset = 32
    static let hasInitialNameBit: UInt32 = 1 << 30
    static let statusRecordOffset = 104
    static let nameKind: UInt64 = 6
    static let dependencyKind: UInt64 = 0
    static let waitingOnTask: UInt32 = 1
    static let enqueuedOnExecutor: UInt32 = 4
    /// Status records a task carries are few (dependency, deadline, group, child, name...).
    static let maximumRecords = 64
    /// Longer names are cut here (the name is the target's to choose).
    static let maximumNameBytes = 1024

    /// The records of the task at `address`; empty when none can be read.
    static func read(memory: TargetMemory, task address: UInt64) -> TaskRecords {
        var records = TaskRecords()
        guard let head = Ptrace.readMemory(memory, at: address, count: statusRecordOffset + 8) else { return records }
        let named = UInt32(truncatingIfNeeded: littleEndianWord(head, at: jobFlagsOffset)) & hasInitialNameBit != 0
        var record = littleEndianWord(head, at: statusRecordOffset)
        var seen = 0
        while record != 0, seen < maximumRecords {
            seen += 1
            guard let bytes = Ptrace.readMemory(memory, at: record, count: 40) else { break }
            switch littleEndianWord(bytes, at: 0) & 0xff {
            case nameKind where named && records.name == nil:
                records.name = cString(memory: memory, at: littleEndianWord(bytes, at: 16)).map(RawBytes.decode)
            case dependencyKind:
                let on = littleEndianWord(bytes, at: 16)
                switch UInt32(truncatingIfNeeded: littleEndianWord(bytes, at: 32)) {
                case waitingOnTask where on != 0: records.awaitedTask = on
                case enqueuedOnExecutor where on != 0: records.enqueuedOn = on
                default: break
                }
            default:
                break
            }
            record = littleEndianWord(bytes, at: 8)
        }
        return records
    }

    /// The bytes of the NUL-terminated string at `address`, read a page at most at a
    /// time (a read may not cross into an unmapped page), at most maximumNameBytes.
    static func cString(memory: TargetMemory, at address: UInt64, limit: Int = maximumNameBytes) -> [UInt8]? {
        var bytes: [UInt8] = []
        var next = address
        while bytes.count < limit {
            let toPageEnd = Int(4096 - next % 4096)
            guard let chunk = Ptrace.readMemory(memory, at: next, count: min(toPageEnd, limit - bytes.count)) else { return nil }
            if let end = chunk.firstIndex(of: 0) { return bytes + chunk[..<end] }
            bytes += chunk
            next &+= UInt64(chunk.count)
        }
        return bytes
    }
}
