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
// list, so the scan does not find it. Nothing is stopped unless --consistent: a
// task that runs while it is read may show where it was a moment before, as with
// any snapshot taken without a stop (README, "Swift tasks").
import Glibc

public struct TaskStatistics: Sendable {
    public var tasks = 0
    /// Words equal to the task metadata that the library did not read as a task.
    public var rejected = 0
    /// Task objects of tasks that have returned (kept alive by a handle, or freed memory not yet reused).
    public var finished = 0
    public var scannedBytes = 0
    public var nanoseconds: UInt64 = 0
    /// With --consistent: task-like words left unread when the stop window reached --stop-timeout.
    public var unread = 0
    /// With --consistent: how long every thread was stopped.
    public var stopWindowNanoseconds: UInt64?
}

extension Profiler {
    public static func tasks(pid: Int32, options: SnapshotOptions = SnapshotOptions()) throws(TargetError) -> (Snapshot, TaskStatistics) {
        let start = monotonicNanoseconds()
        try TargetPreflight.check(pid: pid)
        let memoryMap: MemoryMap
        do { memoryMap = try MemoryMap.read(pid: pid) } catch { throw TargetPreflight.vanished(pid: pid, error) }
        let image = TargetImage(pid: pid, memoryMap: memoryMap)
        let runtime = try TaskRuntime(memoryMap: memoryMap, image: image, options: options.symbolize)
        var statistics = TaskStatistics()
        // Scanned and read while every thread is stopped with --consistent, so that no
        // task moves meanwhile; the frames are named after the process goes on.
        // Stopped, the reading is bounded by --stop-timeout: the rest is reported unread.
        let budget = options.consistent ? options.capture.stopTimeoutNanoseconds : .max
        var failures: [ThreadFailure] = []
        var wasStopped = false
        let readout: TaskReadout
        // The threads' stacks, searched for the running tasks: of the stop with --consistent.
        var stoppedThreads: [CapturedThread]?
        if options.consistent {
            var captureOptions = options.capture
            captureOptions.readThreadState = false
            let unsafeRead = UncheckedSendable { TaskReadout(memory: .process(pid), map: memoryMap, runtime: runtime, budget: budget) }
            let (capture, read) = try TracerThread.run { () throws(TargetError) in
                try StopTheWorld(pid: pid, options: captureOptions).run { _ in unsafeRead.value() }
            }
            readout = read
            stoppedThreads = capture.threads
            failures = capture.failures
            statistics.unread = read.found - read.addresses.count
            if statistics.unread > 0 {
                failures.append(ThreadFailure(tid: 0, reason: "the tasks past the first \(read.addresses.count) task-like words were not read: "
                                              + "the process was let go after --stop-timeout (\(budget / 1_000_000) ms)"))
            }
            wasStopped = capture.wasStopped
            statistics.stopWindowNanoseconds = capture.stopWindowNanoseconds
        } else {
            readout = TaskReadout(memory: .process(pid), map: memoryMap, runtime: runtime, budget: budget)
        }
        let stacks = try taskStacks(readout, runtime: runtime, memory: .process(pid), options: options, statistics: &statistics) {
            () throws(TargetError) -> [CapturedThread] in
            if let stoppedThreads { return stoppedThreads }
            return try TaskThreads.capture(pid: pid, options: options.capture)
        }
        statistics.nanoseconds = monotonicNanoseconds() - start
        let snapshot = Snapshot(pid: pid, threads: stacks, failures: failures, memoryMapLines: memoryMap.regions.map(\.line),
                                wasStopped: wasStopped)
        return (snapshot, statistics)
    }

    /// The tasks read, as stacks headed by their states; `threads` gives the threads to
    /// search for the running ones, asked only when a task runs.
    static func taskStacks(_ readout: TaskReadout, runtime: TaskRuntime, memory: TargetMemory, options: SnapshotOptions,
                           statistics: inout TaskStatistics,
                           threads: () throws(TargetError) -> [CapturedThread]) throws(TargetError) -> [ThreadStack] {
        let symbolizer = runtime.symbolizer
        statistics.scannedBytes = readout.scannedBytes
        var tasks: [TaskInfo] = []
        var frames: [UInt64: [Location]] = [:]
        for address in readout.addresses {
            guard let info = readout.infos[address] else {
                statistics.rejected += 1
                continue
            }
            var locations = info.asyncFrames.prefix(options.unwind.maxFrames).map { symbolizer.location(pc: $0, isReturnAddress: false) }
            // Where the task goes on when next run, when that is the program's own code and
            // not the innermost async frame already: the function an enqueued task (waiting
            // for an actor, say) or a running one is in. The runtime's own entries (resume
            // adapters, a finished task's completion) say nothing more.
            if info.runJob != 0, info.runJob != info.asyncFrames.first, locations.count < options.unwind.maxFrames,
               case let entry = symbolizer.location(pc: info.runJob, isReturnAddress: false),
               !entry.module.hasSuffix("/libswift_Concurrency.so") {
                locations.insert(entry, at: 0)
            }
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
        let ids = Dictionary(tasks.map { ($0.address, $0.id) }, uniquingKeysWith: min)
        var executorNames: [UInt64: String] = [:]
        /// What the task's dependency record says a suspended task awaits.
        func awaitedTask(_ task: TaskInfo) -> String? {
            task.records.awaitedTask.map { awaited in ids[awaited].map { "awaiting task \($0)" } ?? "awaiting a task" }
        }
        /// What the task's dependency record says an enqueued task waits for.
        func executor(_ task: TaskInfo) -> String? {
            guard let identity = task.records.enqueuedOn else { return nil }
            if let known = executorNames[identity] { return known }
            let name = TaskInfo.executorName(memory: memory, identity: identity, symbolizer: symbolizer)
            executorNames[identity] = name
            return name
        }
        let running = Set(tasks.filter { $0.isRunning == true }.map(\.address))
        var runningOn: [UInt64: Int32] = [:]
        if !running.isEmpty {
            runningOn = TaskThreads.threads(in: try threads()) { running.contains($0) }
        }
        let parents = Dictionary(tasks.flatMap { task in task.children.map { ($0, task.id) } }, uniquingKeysWith: min)
        let stacks = tasks.map { task in
            ThreadStack(tid: Int32(clamping: task.id),
                        name: task.stateDescription(parent: parents[task.address], thread: runningOn[task.address],
                                                    enqueuedOn: executor(task),
                                                    awaiting: awaitedTask(task)
                                                        ?? frames[task.address]?.first?.lines.first.flatMap { TaskInfo.awaited($0.function) }),
                        locations: frames[task.address] ?? [],
                        truncation: task.asyncFrames.count > options.unwind.maxFrames ? "more than \(options.unwind.maxFrames) async frames" : nil)
        }
        statistics.tasks = stacks.count
        return stacks
    }
}

/// The task-like words of a process's memory and what the reflection library read at
/// each, within `budget` nanoseconds of reading (the rest left unread).
struct TaskReadout {
    let addresses: [UInt64]
    let infos: [UInt64: TaskInfo]
    let found: Int
    let scannedBytes: Int

    init(memory: TargetMemory, map: MemoryMap, runtime: TaskRuntime, budget: UInt64) {
        let start = monotonicNanoseconds()
        let scan = TaskScan.candidates(memory: memory, map: map, metadata: runtime.metadata)
        var infos: [UInt64: TaskInfo] = [:]
        var read = scan.addresses
        for (index, address) in scan.addresses.enumerated() {
            if index & 63 == 63, monotonicNanoseconds() - start > budget {
                read = Array(scan.addresses.prefix(index))
                break
            }
            infos[address] = runtime.mirror.task(at: address).map { info in
                var named = info
                named.records = TaskRecords.read(memory: memory, task: address)
                return named
            }
        }
        addresses = read
        self.infos = infos
        found = scan.addresses.count
        scannedBytes = scan.scannedBytes
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

    /// TaskPriority's name for the priority it runs at (escalated, else as enqueued);
    /// nil when unspecified (0).
    var priorityName: String? {
        let value = maxPriority != 0 ? maxPriority : enqueuePriority
        switch value {
        case 0: return nil
        case 25: return "high"
        case 21: return "medium"
        case 17: return "low"
        case 9: return "background"
        default: return String(value)
        }
    }

    /// What a suspended task waits on, from the library function it is suspended in
    /// (its innermost frame): the runtime's own entry points for each kind of wait.
    /// nil for a wait in the task's own code (an `async let`, an actor hop).
    static func awaited(_ function: String) -> String? {
        if function.contains("Continuation") && function.contains("with") { return "on a continuation" }
        if function.contains(".sleep(") { return "in Task.sleep" }
        if function.contains("TaskGroup") && function.contains(".next(") { return "on its task group" }
        return nil
    }

    /// What an enqueued task waits for: the type of the executor's identity, an actor
    /// ("on actor SwiftServer.Ledger"), named by the symbol of its class metadata; "on
    /// an actor" when the metadata has no symbol (a generic actor's is made at run time).
    static func executorName(memory: TargetMemory, identity: UInt64, symbolizer: Symbolizer) -> String {
        guard let word = Ptrace.readMemory(memory, at: identity, count: 8),
              let symbol = symbolizer.location(pc: littleEndianWord(word, at: 0), isReturnAddress: false).lines.first,
              symbol.offset == 0, symbol.function.hasPrefix("type metadata for ") else { return "on an actor" }
        return "on actor " + symbol.function.dropFirst("type metadata for ".count)
    }

    /// The concurrency runtime's completeTask, completeTaskWithClosure, completeTaskAndRelease.
    private static func isCompletion(_ location: Location) -> Bool {
        location.module.hasSuffix("/libswift_Concurrency.so") && location.lines.last?.function.hasPrefix("completeTask") == true
    }

    /// "suspended on a continuation", "running", "enqueued", and what kind of child it is;
    /// a task's name first, always quoted (`"auditor" running`): the traceback heads
    /// the task with it, as threads with theirs.
    /// `enqueuedOn`: what an enqueued task waits for ("on actor X"); `awaiting`: what a
    /// suspended one waits on ("awaiting task N", "in Task.sleep").
    func stateDescription(parent: UInt64?, thread: Int32? = nil, enqueuedOn: String? = nil, awaiting: String?) -> String {
        var state = isRunning == true ? "running" + (thread.map { " on thread \($0)" } ?? "") : isEnqueued ? "enqueued" : "suspended"
        if state == "enqueued", let enqueuedOn { state += " " + enqueuedOn }
        if state == "suspended", let awaiting { state += " " + awaiting }
        var words = [state]
        let kind = isGroupChild ? "task group child" : isAsyncLet ? "async let" : isChild || parent != nil ? "child" : nil
        if let kind { words.append(kind + (parent.map { " of task \($0)" } ?? "")) }
        if isCancelled { words.append("cancelled") }
        if let priority = priorityName { words.append("priority " + priority) }
        return (name.map { NameQuoting.alwaysQuoted($0) + " " } ?? "") + words.joined(separator: ", ")
    }
}

/// Where the task metadata word appears in the target's writable anonymous memory.
enum TaskScan {
    static func candidates(memory: TargetMemory, map: MemoryMap, metadata: UInt64) -> (addresses: [UInt64], scannedBytes: Int) {
        var addresses: [UInt64] = []
        var scanned = 0
        for region in map.regions where region.isReadable && region.isWritable
            && (region.path.isEmpty || region.path == "[heap]") {
            let found = RemoteMirror.words(equalTo: metadata, memory: memory, start: region.start, length: region.end - region.start)
            addresses += found.addresses
            scanned += found.scanned
        }
        return (addresses, scanned)
    }
}

/// A value handed to the tracer thread, which runs it while the caller waits:
/// never used from two threads at once.
private struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
