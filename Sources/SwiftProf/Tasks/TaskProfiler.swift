// `dump --tasks`: every live async task of a Swift process, suspended ones too,
// with its async backtrace (the partial functions it will resume into, innermost
// first), as Go's goroutine profile lists goroutines.
//
// The runtime keeps no list of tasks (Swift 6.3): they are heap objects whose
// first word is the AsyncTask metadata, whose address the runtime exports for
// debuggers (_swift_concurrency_debug_asyncTaskMetadata). The target's writable
// anonymous memory is scanned for that word at object alignment, and each hit is
// read by the runtime's reflection library (RemoteMirror), which rejects what is
// not a task. A freed task's first word is overwritten by the allocator's free
// list, so the scan does not find it. Nothing is stopped: a task that runs while
// it is read may show where it was a moment before, as with any snapshot taken
// without a stop (README, "Swift tasks").
import Glibc

public struct TaskStatistics: Sendable {
    public var tasks = 0
    /// Words equal to the task metadata that the library did not read as a task.
    public var rejected = 0
    /// Task objects of tasks that have returned (kept alive by a handle, or freed memory not yet reused).
    public var finished = 0
    public var scannedBytes = 0
    public var nanoseconds: UInt64 = 0
}

extension Profiler {
    public static func tasks(pid: Int32, options: SnapshotOptions = SnapshotOptions()) throws(TargetError) -> (Snapshot, TaskStatistics) {
        let start = monotonicNanoseconds()
        try TargetPreflight.check(pid: pid)
        let memoryMap: MemoryMap
        do { memoryMap = try MemoryMap.read(pid: pid) } catch { throw TargetPreflight.vanished(pid: pid, error) }
        let image = TargetImage(pid: pid, memoryMap: memoryMap)
        let vdso = memoryMap.regions.first { $0.path == "[vdso]" }
        guard let symbolizer = Symbolizer(pid: pid, modules: image.symbolModules(), vdso: vdso, options: options.symbolize) else {
            throw .noTasks(pid: pid, reason: "its modules cannot be read")
        }
        guard let variable = symbolizer.address(ofSymbol: "_swift_concurrency_debug_asyncTaskMetadata") else {
            throw .noTasks(pid: pid, reason: "it has no Swift concurrency runtime (libswift_Concurrency.so)")
        }
        guard let word = Ptrace.readMemory(pid: pid, at: variable, count: 8), case let metadata = TaskScan.word(word, at: 0),
              metadata != 0 else {
            throw .noTasks(pid: pid, reason: "its concurrency runtime's task metadata cannot be read")
        }
        var symbols: [String: UInt64?] = [:]
        let mirror = try RemoteMirror(pid: pid) { name in
            if let known = symbols[name] { return known }
            let address = symbolizer.address(ofSymbol: name)
            symbols[name] = address
            return address
        }
        var statistics = TaskStatistics()
        let scan = TaskScan.candidates(pid: pid, map: memoryMap, metadata: metadata)
        statistics.scannedBytes = scan.scannedBytes
        var tasks: [TaskInfo] = []
        var frames: [UInt64: [Location]] = [:]
        for address in scan.addresses {
            guard let info = mirror.task(at: address) else {
                statistics.rejected += 1
                continue
            }
            let locations = info.asyncFrames.prefix(options.unwind.maxFrames).map { symbolizer.location(pc: $0, isReturnAddress: false) }
            // A task that returned resumes into nothing but the runtime's completion:
            // done, and not listed (its object lives on while a handle holds it).
            guard let own = TaskInfo.ownFrames(locations) else {
                statistics.finished += 1
                continue
            }
            frames[address] = own
            tasks.append(info)
        }
        tasks.sort { $0.id != $1.id ? $0.id < $1.id : $0.address < $1.address }
        let parents = Dictionary(tasks.flatMap { task in task.children.map { ($0, task.id) } }, uniquingKeysWith: min)
        let stacks = tasks.map { task in
            ThreadStack(tid: Int32(clamping: task.id), name: task.stateDescription(parent: parents[task.address]),
                        locations: frames[task.address] ?? [],
                        truncation: task.asyncFrames.count > options.unwind.maxFrames ? "more than \(options.unwind.maxFrames) async frames" : nil)
        }
        statistics.tasks = stacks.count
        statistics.nanoseconds = monotonicNanoseconds() - start
        let snapshot = Snapshot(pid: pid, threads: stacks, failures: [], memoryMapLines: memoryMap.regions.map(\.line),
                                wasStopped: false)
        return (snapshot, statistics)
    }
}

extension TaskInfo {
    /// The frames without the runtime's task completion at the end (what every task
    /// resumes into last, as goexit ends every goroutine); nil when nothing else is left.
    static func ownFrames(_ locations: [Location]) -> [Location]? {
        var own = locations
        while let last = own.last, isCompletion(last) { own.removeLast() }
        return own.isEmpty ? nil : own
    }

    /// The concurrency runtime's completeTask, completeTaskWithClosure, completeTaskAndRelease.
    private static func isCompletion(_ location: Location) -> Bool {
        location.module.hasSuffix("/libswift_Concurrency.so") && location.lines.last?.function.hasPrefix("completeTask") == true
    }

    /// "suspended", "running", "enqueued", and what kind of child it is.
    func stateDescription(parent: UInt64?) -> String {
        var words = [isRunning == true ? "running" : isEnqueued ? "enqueued" : "suspended"]
        if isGroupChild { words.append("task group child") } else if isAsyncLet { words.append("async let") } else if isChild { words.append("child") }
        if let parent { words.append("of task \(parent)") }
        if isCancelled { words.append("cancelled") }
        return words.joined(separator: ", ")
    }
}

/// Where the task metadata word appears in the target's writable anonymous memory.
enum TaskScan {
    /// Reads of at most this much at a time.
    private static let chunk = 1 << 20

    static func candidates(pid: Int32, map: MemoryMap, metadata: UInt64) -> (addresses: [UInt64], scannedBytes: Int) {
        var addresses: [UInt64] = []
        var scanned = 0
        for region in map.regions where region.isReadable && region.permissions.dropFirst().first == "w"
            && (region.path.isEmpty || region.path == "[heap]") {
            var address = region.start
            while address < region.end {
                let count = Int(min(UInt64(chunk), region.end - address))
                if let bytes = Ptrace.readMemory(pid: pid, at: address, count: count) {
                    scanned += count
                    // Heap objects are 16-byte aligned.
                    var offset = 0
                    while offset + 8 <= bytes.count {
                        if word(bytes, at: offset) == metadata { addresses.append(address + UInt64(offset)) }
                        offset += 16
                    }
                }
                address += UInt64(count)
            }
        }
        return (addresses, scanned)
    }

    static func word(_ bytes: [UInt8], at offset: Int) -> UInt64 {
        var value: UInt64 = 0
        for index in 0..<8 { value |= UInt64(bytes[offset + index]) << (8 * UInt64(index)) }
        return value
    }
}
