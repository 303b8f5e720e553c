// The documents `dump` prints and `serve` answers with: one snapshot of a
// process's threads, goroutines or tasks, with the comments that go with it.
import SwiftProf

enum SnapshotDocuments {
    /// The threads, each blocked one's wait on its state, the deadlocks, convoys and
    /// file-lock waits first among the comments.
    static func threads(pid: Int32, options: SnapshotOptions, threadIDs: Bool) throws(TargetError)
        -> (document: ProfileDocument, snapshot: Snapshot, statistics: SnapshotStatistics, waits: WaitLines) {
        var (snapshot, statistics) = try Profiler.snapshot(pid: pid, options: options)
        Profiler.markRunningTasks(&snapshot, options: options)
        let waits = Profiler.waitLines(snapshot, options: options, threadIDs: threadIDs)
        waits.mark(&snapshot)
        var document = ProfileDocument(snapshot: snapshot)
        document.comments = waits.all
            + ["capture: \(statistics.paths.summary)"] + [options.capture.threadNames.comment].compactMap { $0 }
            + failureComments(snapshot.failures)
        return (document, snapshot, statistics, waits)
    }

    /// Every goroutine of a Go program, as Go's own goroutine profile groups them.
    static func goroutines(pid: Int32, options: SnapshotOptions) throws(TargetError)
        -> (document: ProfileDocument, snapshot: Snapshot, statistics: GoroutineStatistics) {
        let (snapshot, statistics) = try Profiler.goroutines(pid: pid, options: options)
        var document = ProfileDocument(snapshot: snapshot)
        document.profileName = "goroutine"
        document.command = "swiftprof dump --goroutines \(pid)"
        document.comments = ["goroutines: \(statistics.goroutines), and \(statistics.systemGoroutines) of the runtime not shown"
            + (statistics.unreadGoroutines > 0 ? "; \(statistics.unreadGoroutines) not read (--stop-timeout)" : "")]
            + failureComments(snapshot.failures)
        return (document, snapshot, statistics)
    }

    /// Every async task of a Swift program, with Swift's own backtracer's names
    /// (no thunks) unless full names are asked for.
    static func tasks(pid: Int32, options: SnapshotOptions, swiftNames: SwiftNameStyle?, hideThunks: Bool) throws(TargetError)
        -> (document: ProfileDocument, snapshot: Snapshot, statistics: TaskStatistics) {
        var options = options
        options.symbolize.names.swiftNames = swiftNames ?? .simplified
        options.symbolize.hidesThunks = hideThunks || swiftNames != .full
        let (snapshot, statistics) = try Profiler.tasks(pid: pid, options: options)
        var document = ProfileDocument(snapshot: snapshot)
        document.profileName = "task"
        document.command = "swiftprof dump --tasks \(pid)"
        document.comments = ["capture: \(statistics.tasks) tasks, " + (options.consistent ? "read with every thread stopped" : "read without a stop")]
            + failureComments(snapshot.failures)
        return (document, snapshot, statistics)
    }

    /// A core's threads, the thread that took the fatal signal first; or its goroutines.
    static func core(path: String, files: CoreFileOptions, options: SnapshotOptions, goroutines: Bool) throws(CoreError)
        -> (document: ProfileDocument, snapshot: Snapshot, statistics: CoreStatistics) {
        var document: ProfileDocument
        let snapshot: Snapshot, statistics: CoreStatistics
        if goroutines {
            let goroutineStatistics: GoroutineStatistics
            (snapshot, goroutineStatistics, statistics) = try Profiler.coreGoroutines(path: path, files: files, options: options)
            document = ProfileDocument(snapshot: snapshot)
            document.profileName = "goroutine"
            document.comments = ["goroutines: \(goroutineStatistics.goroutines), and \(goroutineStatistics.systemGoroutines) of the runtime not shown"]
        } else {
            (snapshot, statistics) = try Profiler.core(path: path, files: files, options: options)
            document = ProfileDocument(snapshot: snapshot)
            document.comments = ["kernel frames: none, a core holds no kernel stacks; thread states: only the system call each was in"]
        }
        document.command = "swiftprof dump --core \(path)" + (goroutines ? " --goroutines" : "")
        document.comments.insert("core: \(NameQuoting.quoted(path)) of process \(snapshot.pid) (\(NameQuoting.quoted(statistics.processName)))"
                                 + (statistics.compression.map { ", \($0)-compressed" } ?? ""), at: 0)
        if let signal = statistics.signal {
            document.comments.insert(CoreSignal.commentPrefix + "\(signal.description), taken by thread \(signal.tid)", at: 1)
            document.leadingThread = signal.tid
            // The thread that took it comes first, as a crash's traceback shows it.
            if !goroutines, let index = document.records.firstIndex(where: { $0.threadIDs.contains(signal.tid) }) {
                document.records.insert(document.records.remove(at: index), at: 0)
            }
        }
        document.comments += statistics.missingFiles.map { "not symbolized: \($0)" }
        return (document, snapshot, statistics)
    }
}
