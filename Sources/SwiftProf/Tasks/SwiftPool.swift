// A Swift program's cooperative pool and its actors, said at the top of a snapshot
// as deadlocks are: every pool thread blocked outside an await (starvation), and
// an actor held by a running task while other tasks queue on it.
//
// On Linux the pool is libdispatch's global concurrent queue, as wide as the online
// CPUs; a thread running a job has swift_job_run on its stack. A job that blocks in
// a system call keeps its thread: once every pool thread is kept so, no other task
// runs. What waits then: tasks enqueued on the global executor, not on an actor
// (the task reader's). An actor's holder: the thread running a job that keeps the
// actor's address among its stack's words (swift_job_run tracks the executor it
// runs on in its frame), when exactly one thread does, as TaskThreads finds a
// running task.
import Glibc

/// A pool thread blocked in a system call inside a job, and the task it runs.
public struct BlockedJob: Hashable, Sendable {
    public var tid: Int32
    public var taskID: UInt64?
    public var taskName: String?
    public var systemCall: String
    /// The innermost frame of the program's own code: "loadConfig(_:) (main.swift:64)".
    public var place: String?
    public var blockedNanoseconds: UInt64?
}

/// What the pool and the actors come to, for the snapshot's first lines.
public struct SwiftPool: Sendable {
    /// How many threads the pool runs jobs on.
    public var width: Int
    public var blocked: [BlockedJob] = []
    /// Tasks enqueued for a pool thread (nil: the tasks were not read).
    public var waitingForThread: Int?
    /// "SwiftAsync.Registry held by task 1 ...", one an actor held with tasks queued.
    public var heldActors: [String] = []

    public static let starvationPrefix = "starvation: "
    public static let actorPrefix = "actor: "

    /// libdispatch sizes its global queue by the online CPUs.
    init(width: Int = SchedulerClock.onlineCPUs) { self.width = width }

    public var isStarved: Bool { !blocked.isEmpty && blocked.count >= width }

    /// How long the pool has been starved: the shortest wait of its blocked threads,
    /// when the kernel gives every one (--blocked-time, --fail-on-deadlock).
    public var starvedNanoseconds: UInt64? {
        guard isStarved else { return nil }
        let times = blocked.compactMap(\.blockedNanoseconds)
        return times.count == blocked.count ? times.min() : nil
    }

    /// The lines: "starvation: ..." when starved, then each held actor's.
    public func lines(blockedTime: Bool, threadIDs: Bool = true) -> [String] {
        var lines: [String] = []
        if isStarved {
            let jobs = blocked.sorted { ($0.taskID ?? .max, $0.tid) < ($1.taskID ?? .max, $1.tid) }.map { job in
                var words = job.taskID.map { "task \($0)" } ?? (threadIDs ? "thread \(job.tid)" : "a thread")
                if let name = job.taskName { words += " " + NameQuoting.alwaysQuoted(name) }
                words += " in \(job.systemCall)(2)"
                if blockedTime, let time = job.blockedNanoseconds { words += " for \(decimal(Double(time) / 1e9, places: 1)) s" }
                if let place = job.place { words += " at " + place }
                return words
            }
            var line = Self.starvationPrefix + "\(blocked.count) of \(width) pool threads blocked outside an await: "
                + jobs.joined(separator: ", ")
            if let waiting = waitingForThread { line += "; \(waiting) " + (waiting == 1 ? "task waits" : "tasks wait") + " for a thread" }
            lines.append(line)
        }
        return lines + heldActors.map { Self.actorPrefix + $0 }
    }

    /// Whether a profile's comment is one of these (the target's state).
    public static func isPoolLine(_ comment: String) -> Bool {
        comment.hasPrefix(starvationPrefix) || comment.hasPrefix(actorPrefix)
    }

    /// The job a thread runs, when it is a pool thread blocked in a system call.
    static func blockedJob(_ thread: ThreadStack, taskID: UInt64?, taskName: String?) -> BlockedJob? {
        guard let state = thread.state, state.code == "S" || state.code == "D", let call = state.systemCall,
              thread.locations.contains(where: { $0.lines.contains { $0.function == "swift_job_run" } }) else { return nil }
        return BlockedJob(tid: thread.tid, taskID: taskID, taskName: taskName, systemCall: call.name,
                          place: ownPlace(thread.locations), blockedNanoseconds: state.blockedNanoseconds)
    }

    /// "function (file:line)" of the innermost frame of the program's own code: not
    /// the kernel's, the C library's or the Swift runtime's.
    static func ownPlace(_ locations: [Location]) -> String? {
        let runtimeDirectory = locations.first { $0.module.hasSuffix(TaskRuntime.concurrencyLibrary) }
            .map { String($0.module.dropLast(TaskRuntime.concurrencyLibrary.count)) }
        guard let own = locations.first(where: { location in
            !location.isKernel && !location.module.isEmpty && !location.module.hasPrefix("/lib")
                && !location.module.hasPrefix("/usr/lib") && runtimeDirectory.map { !location.module.hasPrefix($0 + "/") } ?? true
        }), let line = own.lines.first, !line.function.isEmpty else { return nil }
        let file = line.file.split(separator: "/").last.map(String.init) ?? ""
        // A place is where code runs: without the simplified form's " async" mark.
        let function = line.function.hasSuffix(") async") ? String(line.function.dropLast(" async".count)) : line.function
        return NameQuoting.quoted(function) + (file.isEmpty || line.line == 0 ? "" : " (\(NameQuoting.quoted(file)):\(line.line))")
    }
}

extension Profiler {
    /// The pool seen from a thread snapshot: its blocked jobs (the task of each from
    /// the sample's labels, or the running-task marks); when every pool thread is
    /// blocked, the tasks are read too, for those waiting and the held actors.
    public static func swiftPool(_ snapshot: Snapshot, options: SnapshotOptions) -> SwiftPool? {
        var pool = SwiftPool()
        for thread in snapshot.threads {
            let id = thread.labels["task_id"].flatMap { UInt64($0) } ?? thread.state?.swiftTasks.first
            if let job = SwiftPool.blockedJob(thread, taskID: id, taskName: thread.labels["task_name"]) { pool.blocked.append(job) }
        }
        guard !pool.blocked.isEmpty else { return nil }
        if pool.isStarved, let (_, statistics) = try? tasks(pid: snapshot.pid, options: options) {
            pool.waitingForThread = statistics.pool?.waitingForThread
            pool.heldActors = statistics.pool?.heldActors ?? []
        }
        return pool
    }
}
