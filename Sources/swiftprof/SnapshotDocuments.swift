// The documents `dump` prints and `serve` answers with: one snapshot of a
// process's threads, goroutines or tasks, with the comments that go with it.
import SwiftProf

enum SnapshotDocuments {
    /// The threads, each blocked one's wait on its state, the deadlocks, convoys and
    /// file-lock waits first among the comments.
    static func threads(pid: Int32, options: SnapshotOptions, threadIDs: Bool, blockedTime: Bool = false) throws(TargetError)
        -> (document: ProfileDocument, snapshot: Snapshot, statistics: SnapshotStatistics, waits: WaitLines, pool: SwiftPool?) {
        var (snapshot, statistics) = try Profiler.snapshot(pid: pid, options: options)
        Profiler.markRunningTasks(&snapshot, options: options)
        let waits = Profiler.waitLines(snapshot, options: options, threadIDs: threadIDs)
        waits.mark(&snapshot)
        let pool = Profiler.swiftPool(snapshot, options: options)
        var document = ProfileDocument(snapshot: snapshot)
        document.comments = waits.all + (pool?.lines(blockedTime: blockedTime, threadIDs: threadIDs) ?? [])
            + ["capture: \(statistics.paths.summary)"] + [options.capture.threadNames.comment].compactMap { $0 }
            + failureComments(snapshot.failures)
        return (document, snapshot, statistics, waits, pool)
    }



    /// Several processes' threads in one snapshot, each thread marked with its process
    /// and grouped with its own process's (or, merging, with any process's). Each
    /// process's own lines (deadlocks, a starved pool) are prefixed with it; one that
    /// ended before it was read, or could not be, is a line of `unread`.
    static func processes(_ pids: [Int32], options: SnapshotOptions, threadIDs: Bool, blockedTime: Bool, merging: Bool)
        -> (document: ProfileDocument, snapshots: [Snapshot], unread: [String], deadlocks: [String]) {
        var threads: [ThreadStack] = []
        var snapshots: [Snapshot] = []
        var lines: [String] = []
        var deadlocks: [String] = []
        var unread: [String] = []
        var failures: [ThreadFailure] = []
        var paths = CaptureCounts()
        var options = options
        if options.sharedModules == nil { options.sharedModules = SharedModules() }
        for pid in pids {
            guard let process = ProcessIdentity.read(pid: pid) else {
                unread.append("process \(pid) ended before it was read")
                continue
            }
            do {
                let (document, snapshot, statistics, waits, pool) = try Self.threads(pid: pid, options: options, threadIDs: threadIDs,
                                                                                     blockedTime: blockedTime)
                threads += document.threads.map { thread in
                    var thread = thread
                    thread.process = process
                    return thread
                }
                let own = "process \(pid): "
                lines += (waits.all + (pool?.lines(blockedTime: blockedTime, threadIDs: threadIDs) ?? [])).map { own + $0 }
                deadlocks += waits.deadlocks.map { own + $0 }
                failures += snapshot.failures
                paths.add(statistics.paths)
                snapshots.append(snapshot)
            } catch {
                switch error {
                case .noSuchProcess, .zombie, .exitedDuringCapture, .mainThreadEnded:
                    unread.append("process \(pid) ended before it was read")
                default:
                    unread.append("process \(pid) not read: \(error.description)")
                }
            }
        }
        var document = ProfileDocument(records: Grouper.records(threads, mergingProcesses: merging), threads: threads, failures: failures)
        document.command = "swiftprof dump"
        let count = snapshots.count
        document.comments = lines + ["capture: \(count) \(count == 1 ? "process" : "processes"), \(threads.count) threads: \(paths.summary)"]
            + [options.capture.threadNames.comment].compactMap { $0 } + failureComments(failures)
        return (document, snapshots, unread, deadlocks)
    }

    /// Every goroutine of a Go program, as Go's own goroutine profile groups them.
    static func goroutines(pid: Int32, options: SnapshotOptions) throws(TargetError)
        -> (document: ProfileDocument, snapshot: Snapshot, statistics: GoroutineStatistics) {
        let (snapshot, statistics) = try Profiler.goroutines(pid: pid, options: options)
        var document = ProfileDocument(snapshot: snapshot)
        document.profileName = "goroutine"
        document.command = "swiftprof dump --goroutines \(pid)"
        document.comments = [goroutineCount(statistics)]
            + failureComments(snapshot.failures)
        return (document, snapshot, statistics)
    }

    /// "goroutines: N, and M of the runtime not shown", and how many went unread.
    private static func goroutineCount(_ statistics: GoroutineStatistics) -> String {
        "goroutines: \(statistics.goroutines), and \(statistics.systemGoroutines) of the runtime not shown"
            + (statistics.unreadGoroutines > 0 ? "; \(statistics.unreadGoroutines) not read (--stop-timeout)" : "")
    }

    /// What the task reader found and left out: "; not shown: 8 of the runtime, 3
    /// returned, 12 dead task objects" ("" when nothing was).
    private static func notShown(_ statistics: TaskStatistics) -> String {
        let parts = [(statistics.runtime, "of the runtime"), (statistics.finished, "returned"),
                     (statistics.dead, "dead task " + (statistics.dead == 1 ? "object" : "objects")),
                     (statistics.changing, "changing as read")]
            .filter { $0.0 > 0 }.map { "\($0.0) \($0.1)" }
        return parts.isEmpty ? "" : "; not shown: " + parts.joined(separator: ", ")
    }

    /// Every async task of a Swift program.
    static func tasks(pid: Int32, options: SnapshotOptions) throws(TargetError)
        -> (document: ProfileDocument, snapshot: Snapshot, statistics: TaskStatistics) {
        let (snapshot, statistics) = try Profiler.tasks(pid: pid, options: options)
        var document = ProfileDocument(snapshot: snapshot)
        document.profileName = "task"
        document.command = "swiftprof dump --tasks \(pid)"
        document.comments = (statistics.pool?.lines(blockedTime: false) ?? [])
            + ["capture: \(statistics.tasks) tasks, " + (options.consistent ? "read with every thread stopped" : "read without a stop")
               + notShown(statistics)]
            + failureComments(snapshot.failures)
        return (document, snapshot, statistics)
    }

    /// What `dump --core` lists of a core.
    enum CoreView {
        case threads, goroutines, tasks
    }

    /// A core's threads, the thread that took the fatal signal first; or its goroutines, or its tasks.
    static func core(path: String, files: CoreFileOptions, options: SnapshotOptions, view: CoreView) throws(CoreError)
        -> (document: ProfileDocument, snapshot: Snapshot, statistics: CoreStatistics) {
        var document: ProfileDocument
        let snapshot: Snapshot, statistics: CoreStatistics
        switch view {
        case .goroutines:
            let goroutineStatistics: GoroutineStatistics
            (snapshot, goroutineStatistics, statistics) = try Profiler.coreGoroutines(path: path, files: files, options: options)
            document = ProfileDocument(snapshot: snapshot)
            document.profileName = "goroutine"
            document.comments = [goroutineCount(goroutineStatistics)]
        case .tasks:
            let taskStatistics: TaskStatistics
            (snapshot, taskStatistics, statistics) = try Profiler.coreTasks(path: path, files: files,
                                                                            options: options)
            document = ProfileDocument(snapshot: snapshot)
            document.profileName = "task"
            document.comments = ["capture: \(taskStatistics.tasks) tasks, read from the core" + notShown(taskStatistics)]
        case .threads:
            (snapshot, statistics) = try Profiler.core(path: path, files: files, options: options)
            document = ProfileDocument(snapshot: snapshot)
            document.comments = ["kernel frames: none, a core holds no kernel stacks; thread states: only the system call each was in"]
        }
        document.command = "swiftprof dump --core \(path)" + (view == .goroutines ? " --goroutines" : view == .tasks ? " --tasks" : "")
        document.comments.insert("core: \(NameQuoting.quoted(path)) of process \(snapshot.pid) (\(NameQuoting.quoted(statistics.processName)))"
                                 + (statistics.compression.map { ", \($0)-compressed" } ?? ""), at: 0)
        if let signal = statistics.signal {
            document.comments.insert(CoreSignal.commentPrefix + "\(signal.description), taken by thread \(signal.tid)", at: 1)
            // The thread that took it comes first, as a crash's traceback shows it.
            if view == .threads {
                document.leadingThread = signal.tid
                if let index = document.records.firstIndex(where: { $0.threadIDs.contains(signal.tid) }) {
                    document.records.insert(document.records.remove(at: index), at: 0)
                }
            }
        }
        document.comments += statistics.missingFiles.map { "not symbolized: \($0)" }
        return (document, snapshot, statistics)
    }
}
