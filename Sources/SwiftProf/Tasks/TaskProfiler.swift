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
    /// Words equal to the task metadata that head no live task: freed or reused task
    /// memory, objects being destroyed (TaskLiveness).
    public var dead = 0
    /// Task objects of tasks that have returned (the runtime's IsComplete; kept alive by a handle).
    public var finished = 0
    /// The cooperative pool's blocked jobs, the tasks waiting for a thread, held actors.
    public var pool: SwiftPool?
    /// Tasks the runtime made for itself (Task.sleep's wake-ups), not listed.
    public var runtime = 0
    /// Live tasks whose header changed under two reads in a row (read without a stop).
    public var changing = 0
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
        var stoppedSamples: [ThreadSample]?
        if options.consistent {
            var captureOptions = options.capture
            captureOptions.readThreadState = false
            // The threads are unwound in the stop too: a running job's async callers are
            // of that instant only while it does not run.
            let unsafeRead = UncheckedSendable { (threads: [CapturedThread]) in
                (TaskReadout(memory: .process(pid), map: memoryMap, runtime: runtime, budget: budget),
                 Profiler.unwound(threads, image: runtime.image, options: options, now: monotonicNanoseconds()))
            }
            let (capture, read) = try TracerThread.run { () throws(TargetError) in
                try StopTheWorld(pid: pid, options: captureOptions).run { threads in UncheckedSendable(unsafeRead.value(threads)) }
            }
            readout = read.value.0
            stoppedSamples = read.value.1
            stoppedThreads = capture.threads
            failures = capture.failures
            statistics.unread = readout.found - readout.addresses.count
            if statistics.unread > 0 {
                failures.append(ThreadFailure(tid: 0, reason: "the tasks past the first \(readout.addresses.count) task-like words were not read: "
                                              + "the process was let go after --stop-timeout (\(budget / 1_000_000) ms)"))
            }
            wasStopped = capture.wasStopped
            statistics.stopWindowNanoseconds = capture.stopWindowNanoseconds
        } else {
            readout = TaskReadout(memory: .process(pid), map: memoryMap, runtime: runtime, budget: budget)
        }
        let stacks = try taskStacks(readout, runtime: runtime, memory: .process(pid), options: options, statistics: &statistics,
                                    unwoundThreads: stoppedSamples) {
            () throws(TargetError) -> [CapturedThread] in
            if let stoppedThreads { return stoppedThreads }
            return try TaskThreads.capture(pid: pid, options: options.capture)
        }
        statistics.nanoseconds = monotonicNanoseconds() - start
        let snapshot = Snapshot(pid: pid, threads: stacks, failures: failures, memoryMapLines: memoryMap.documentLines(pid: pid),
                                wasStopped: wasStopped)
        return (snapshot, statistics)
    }

    /// The tasks read, as stacks headed by their states; `threads` gives the threads to
    /// search for the running ones, asked only when a task runs.
    /// `unwoundThreads`: the threads unwound already, where they were stopped with the read.
    static func taskStacks(_ readout: TaskReadout, runtime: TaskRuntime, memory: TargetMemory, options: SnapshotOptions,
                           statistics: inout TaskStatistics, unwoundThreads: [ThreadSample]? = nil,
                           threads: () throws(TargetError) -> [CapturedThread]) throws(TargetError) -> [ThreadStack] {
        let symbolizer = runtime.symbolizer
        statistics.scannedBytes = readout.scannedBytes
        statistics.finished = readout.returned
        statistics.dead = readout.dead
        statistics.changing = readout.changing
        var tasks: [TaskInfo] = []
        var frames: [UInt64: [Location]] = [:]
        for address in readout.addresses {
            guard let info = readout.infos[address] else { continue }
            // Each async frame is a resume function's entry: a frame inside a function
            // is a context reused while the task ran, and ends the chain.
            var locations = Array(info.asyncFrames.prefix(options.unwind.maxFrames).lazy
                .map { symbolizer.location(pc: $0, isReturnAddress: false).asAsyncCaller }
                .prefix { $0.lines.last.map { $0.function.isEmpty || $0.offset == 0 } ?? true })
            // Where the task goes on when next run, when that is the program's own code and
            // not the innermost async frame already: the function an enqueued task (waiting
            // for an actor, say) or a running one is in. The runtime's own entries (resume
            // adapters, a finished task's completion) say nothing more.
            if info.runJob != 0, info.runJob != info.asyncFrames.first, locations.count < options.unwind.maxFrames,
               case let entry = symbolizer.location(pc: info.runJob, isReturnAddress: false),
               !entry.module.hasSuffix(TaskRuntime.concurrencyLibrary) {
                locations.insert(entry, at: 0)
            }
            // The runtime's task completion, which every task resumes into last (as goexit
            // ends every goroutine), is left out; a task that runs it has not returned yet.
            guard let own = TaskInfo.ownFrames(locations) else {
                // Not started (its one context is its first): its entry closure says whose
                // it is. The runtime's own (Task.sleep's wake-ups) are not listed, as Go
                // leaves out its system goroutines.
                if info.isRunning != true, info.asyncFrames.count == 1,
                   let entry = TaskInfo.entry(memory: memory, initialContext: info.resumeContext) {
                    let location = symbolizer.location(pc: entry, isReturnAddress: false)
                    if location.module.hasSuffix(TaskRuntime.concurrencyLibrary) {
                        statistics.runtime += 1
                        continue
                    }
                    frames[address] = [location]
                } else {
                    frames[address] = locations
                }
                tasks.append(info)
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
        var pool = SwiftPool()
        if !running.isEmpty {
            let captures = try threads()
            runningOn = TaskThreads.threads(in: captures) { running.contains($0) }
            let found = runningTasks(tasks, on: runningOn, captures: captures, unwoundThreads: unwoundThreads,
                                     runtime: runtime, memory: memory, options: options)
            frames.merge(found.stacks) { _, thread in thread }
            pool.blocked = found.blocked
            pool.heldActors = heldActors(tasks, runningOn: runningOn, threads: captures.filter { Set(runningOn.values).contains($0.tid) },
                                         blocked: pool.blocked, name: { executor($0) ?? "an actor" })
        }
        pool.waitingForThread = tasks.filter { $0.isEnqueued && $0.isRunning != true && $0.records.enqueuedOn == nil }.count
        statistics.pool = pool
        let parents = Dictionary(tasks.flatMap { task in task.children.map { ($0, task.id) } }, uniquingKeysWith: min)
        var notes: [UInt64: String] = [:]
        for task in tasks where frames[task.address]?.isEmpty != false {
            // Running when read, on no thread when the threads were looked at (read
            // without a stop, it ran on); or its async frames unreadable: the entry of
            // the job it runs next, and a note.
            if task.runJob != 0 { frames[task.address] = [symbolizer.location(pc: task.runJob, isReturnAddress: false)] }
            notes[task.address] = task.isRunning == true
                ? "running when read, on no thread by the time its thread was looked for (--consistent reads both at once)"
                : "its async frames could not be read"
        }
        // A task whose every frame is a hidden thunk (one not started yet, entered
        // through a partial-apply forwarder) keeps them: no record without a frame.
        for task in tasks where frames[task.address]?.allSatisfy({ $0.lines.isEmpty }) == true {
            frames[task.address] = frames[task.address]?.map { hidden in
                var shown = symbolizer.locationShowingThunks(pc: hidden.address, isReturnAddress: false)
                shown.isAsyncCaller = hidden.isAsyncCaller
                return shown
            }
        }
        let stacks = tasks.map { task in
            ThreadStack(tid: Int32(clamping: task.id),
                        name: task.stateDescription(parent: parents[task.address], thread: runningOn[task.address],
                                                    enqueuedOn: executor(task),
                                                    awaiting: awaitedTask(task)
                                                        ?? frames[task.address]?.first?.lines.first.flatMap { TaskInfo.awaited($0.function) }),
                        locations: frames[task.address] ?? [],
                        truncation: notes[task.address]
                            ?? (task.asyncFrames.count > options.unwind.maxFrames ? "more than \(options.unwind.maxFrames) async frames" : nil))
        }
        statistics.tasks = stacks.count
        return stacks
    }
}

extension Profiler {
    /// The running tasks' records, each its thread's stack down to its first async
    /// caller (the executor's frames left out), and the pool threads blocked in them.
    /// `unwoundThreads`: unwound already (in the stop of --consistent).
    static func runningTasks(_ tasks: [TaskInfo], on runningOn: [UInt64: Int32], captures: [CapturedThread],
                             unwoundThreads: [ThreadSample]?, runtime: TaskRuntime, memory: TargetMemory,
                             options: SnapshotOptions) -> (stacks: [UInt64: [Location]], blocked: [BlockedJob]) {
        let runners = Set(runningOn.values)
        var samples = unwoundThreads?.filter { runners.contains($0.tid) }
            ?? Profiler.unwoundRecovering(captures.filter { runners.contains($0.tid) }, image: runtime.image, options: options)
        // A walk that needs a register /proc does not give, and that the stack does not
        // prove either: that thread is stopped once, as dump's sampler does.
        let incomplete = samples.filter { !$0.isAsGoodAsAStop }.map(\.tid)
        if !incomplete.isEmpty, case .process(let pid) = memory,
           let stopped = try? TaskThreads.capture(pid: pid, tids: incomplete, options: options.capture, withoutStop: false) {
            samples = samples.filter { !incomplete.contains($0.tid) } + Profiler.unwound(stopped, image: runtime.image, options: options, now: 0)
        }
        let stackSymbolizer = StackSymbolizer(symbolizer: runtime.symbolizer, image: runtime.image, options: options)
        let byAddress = Dictionary(tasks.map { ($0.address, $0) }, uniquingKeysWith: { first, _ in first })
        var stacks: [UInt64: [Location]] = [:]
        var blocked: [BlockedJob] = []
        for (address, tid) in runningOn.sorted(by: { $0.key < $1.key }) {
            guard let sample = samples.first(where: { $0.tid == tid }) else { continue }
            if let stack = stackSymbolizer.taskStack(sample), !stack.isEmpty { stacks[address] = stack }
            let task = byAddress[address]
            if let job = SwiftPool.blockedJob(stackSymbolizer.threadStack(sample), taskID: task?.id, taskName: task?.name) {
                blocked.append(job)
            }
        }
        return (stacks, blocked)
    }

    /// "SwiftAsync.Registry held by task 1 \"reloader\" (thread 4423, blocked in
    /// read(2)), 3 tasks queued: 2, 3, 4": for each actor that tasks are enqueued on,
    /// when exactly one thread running a task keeps the actor's address on its stack.
    /// `name` names an actor by its identity ("on actor X").
    static func heldActors(_ tasks: [TaskInfo], runningOn: [UInt64: Int32], threads: [CapturedThread], blocked: [BlockedJob],
                           name: (TaskInfo) -> String) -> [String] {
        let queues = Dictionary(grouping: tasks.filter { $0.records.enqueuedOn != nil }) { $0.records.enqueuedOn! }
        guard !queues.isEmpty else { return [] }
        let holders = TaskThreads.threads(in: threads) { queues[$0] != nil }
        let runnerOf = Dictionary(runningOn.map { ($1, $0) }, uniquingKeysWith: min)
        let byAddress = Dictionary(tasks.map { ($0.address, $0) }, uniquingKeysWith: { first, _ in first })
        return queues.sorted { $0.key < $1.key }.compactMap { identity, queued in
            guard let tid = holders[identity], let holder = runnerOf[tid].flatMap({ byAddress[$0] }) else { return nil }
            let actor = name(queued[0])
            var line = (actor.hasPrefix("on actor ") ? String(actor.dropFirst("on actor ".count)) : "an actor")
                + " held by task \(holder.id)" + (holder.name.map { " " + NameQuoting.alwaysQuoted($0) } ?? "")
            let job = blocked.first { $0.tid == tid }
            line += " (thread \(tid), " + (job.map { "blocked in \($0.systemCall)(2)" } ?? "running") + ")"
            let ids = queued.map(\.id).sorted()
            return line + ", \(ids.count) " + (ids.count == 1 ? "task" : "tasks") + " queued: " + ids.map(String.init).joined(separator: ", ")
        }
    }
}

/// The task-like words of a process's memory and what the reflection library read at
/// each live task, within `budget` nanoseconds of reading (the rest left unread).
struct TaskReadout {
    let addresses: [UInt64]
    /// The live tasks, by address; the other words read are counted by what they were.
    let infos: [UInt64: TaskInfo]
    var returned = 0
    var dead = 0
    var changing = 0
    let found: Int
    let scannedBytes: Int

    init(memory: TargetMemory, map: MemoryMap, runtime: TaskRuntime, budget: UInt64) {
        let start = monotonicNanoseconds()
        let scan = TaskScan.candidates(memory: memory, map: map, metadata: runtime.metadata)
        var read = scan.addresses
        var candidates: [(header: TaskHeader, info: TaskInfo)] = []
        for (index, address) in scan.addresses.enumerated() {
            if index & 63 == 63, monotonicNanoseconds() - start > budget {
                read = Array(scan.addresses.prefix(index))
                break
            }
            // The header is checked first; the library's reading of the same task must
            // agree with it: the same id (else the memory was reused under the two reads)
            // and, read again if need be, the same status bits (a running task's change).
            var agreed: (header: TaskHeader, info: TaskInfo)?
            var life = TaskLife.dead
            for attempt in 0..<2 where agreed == nil || agreed?.header.agrees(with: agreed!.info) == false {
                guard let header = TaskHeader(memory: memory, at: address) else { break }
                life = header.life(map: map, memory: memory)
                guard life == .live else { agreed = nil; break }
                guard let info = runtime.mirror.task(at: address), info.id == header.id else {
                    life = attempt == 0 ? .dead : .changing
                    agreed = nil
                    break
                }
                agreed = (header, info)
            }
            guard let (header, task) = agreed else {
                switch life {
                case .returned: returned += 1
                case .changing: changing += 1
                case .live, .dead: dead += 1
                }
                continue
            }
            var info = task
            // The chain of async frames ends where it leaves code (a context reused meanwhile).
            info.asyncFrames = Array(info.asyncFrames.prefix { map.region(containing: $0)?.isExecutable == true })
            info.records = TaskRecords.read(memory: memory, task: address)
            info.resumeContext = header.resumeContext
            candidates.append((header, info))
        }
        // Read after the tasks: every id given out before is below it.
        let nextID = runtime.nextIDAddress.flatMap { Ptrace.readMemory(memory, at: $0, count: 8) }.map { littleEndianWord($0, at: 0) }
        var infos: [UInt64: TaskInfo] = [:]
        for (header, info) in candidates {
            if let nextID, header.id >= nextID { dead += 1 } else { infos[info.address] = info }
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

    /// The entry closure of a task not started yet: in the context prefix just before
    /// its initial context (AsyncContextPrefix or FutureAsyncContextPrefix, both with
    /// AsyncEntryPoint 24 bytes before the context).
    static func entry(memory: TargetMemory, initialContext: UInt64) -> UInt64? {
        guard initialContext > 24, let word = Ptrace.readMemory(memory, at: initialContext - 24, count: 8) else { return nil }
        let entry = littleEndianWord(word, at: 0)
        return entry == 0 ? nil : entry
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
    static func isCompletion(_ location: Location) -> Bool {
        location.module.hasSuffix(TaskRuntime.concurrencyLibrary) && location.lines.last?.function.hasPrefix("completeTask") == true
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
