// `swiftprof watch PID`: cheap wall-clock sampling (blocked threads reused) that
// keeps the last window of ticks and ends when a condition holds: a deadlock (a
// cycle of lock waits, or a Swift pool whose every thread is blocked in a job), a stall (a thread blocked on a lock longer than a bound),
// or the process's CPU above a share of a core for 5 s. What it hands back is the
// window: where every thread was, tick by tick, up to the moment it fired.
import Glibc

public struct WatchConditions: Sendable, Equatable {
    public var deadlock = false
    /// A thread blocked on a mutex, read-write lock or file lock for longer than this.
    public var stallNanoseconds: UInt64?
    /// The process's CPU time over 5 s of wall time, in cores (0.8: 80 % of one).
    public var cpuCores: Double?

    public init() {}
}

public struct WatchOutcome: Sendable {
    /// What held, as one line; nil when the process ended, or the watch was stopped, first.
    public var fired: String?
    public var targetExited: Bool
    /// The window's samples, with their timeline.
    public var window: ProfileDocument
    public var windowStartUnixNanoseconds: Int64
    public var windowNanoseconds: UInt64
}

extension Profiler {
    /// `onReady` is called once the first pass is taken (every thread seen once).
    public static func watch(pid: Int32, options: SamplingOptions, windowNanoseconds: UInt64, conditions: WatchConditions,
                             shouldStop: @escaping @Sendable () -> Bool, onReady: @escaping @Sendable () -> Void)
        throws(TargetError) -> WatchOutcome {
        let startUnix = realtimeNanoseconds()
        return try TracerThread.run { () throws(TargetError) -> WatchOutcome in
            let sampler = try Sampler(pid: pid, options: options.snapshot)
            let period = UInt64(1e9 / max(options.rate, 0.001))
            sampler.configure(options, period: period)
            var window = WatchWindow(length: windowNanoseconds)
            var checks = WatchChecks(pid: pid, conditions: conditions)
            let exitWatch = ProcessExitWatch(pid: pid)
            var jitter = SystemRandomNumberGenerator()
            var lost = 0
            let start = monotonicNanoseconds()
            var due = start
            var ticks = 0
            var fired: String?
            var exited = false
            while !shouldStop() {
                let tick = try sampler.sampleOnce(due: due)
                if (tick.isEmpty || ticks % 16 == 15) && exitWatch.hasExited {
                    exited = true
                    break
                }
                sampler.releasePending()
                window.add(tick, at: due)
                ticks += 1
                let now = monotonicNanoseconds()
                if ticks == 1 {
                    due = now
                    onReady()
                }
                fired = checks.check(window, image: sampler.targetImage, options: options.snapshot, now: now)
                if fired != nil { break }
                due = nextTick(after: due, now: now, period: period, jitter: &jitter, lost: &lost)
                sleep(until: due, end: nil, shouldStop: shouldStop)
            }
            sampler.releasePending()
            let end = monotonicNanoseconds()
            let windowStart = max(window.firstTime ?? start, end > windowNanoseconds ? end - windowNanoseconds : 0)
            var document = window.document(StackSymbolizer(pid: pid, image: sampler.targetImage, samples: window.representatives,
                                                           options: options.snapshot),
                                           period: period, start: windowStart,
                                           startUnixNanoseconds: startUnix + Int64(windowStart - start))
            document.pid = pid
            document.memoryMapLines = sampler.targetImage.memoryMap.documentLines(pid: pid)
            return WatchOutcome(fired: fired, targetExited: exited, window: document,
                                windowStartUnixNanoseconds: startUnix + Int64(windowStart - start),
                                windowNanoseconds: end - windowStart)
        }
    }
}

/// The last ticks of a watch, and where each thread was before the first of them.
struct WatchWindow {
    let length: UInt64
    private var ticks: [(time: UInt64, tick: Sampler.Tick)] = []
    /// Each thread's sample as of the window's first tick.
    private var before: [Int32: ThreadSample] = [:]
    /// Each thread's sample now, and since when it has not run (its capture's tick).
    private(set) var current: [Int32: ThreadSample] = [:]
    private(set) var stillSince: [Int32: UInt64] = [:]
    /// Fresh captures so far: the waits cannot have changed while this stays the same.
    private(set) var captures = 0

    init(length: UInt64) { self.length = length }

    var firstTime: UInt64? { ticks.first?.time }

    mutating func add(_ tick: Sampler.Tick, at time: UInt64) {
        Self.apply(tick, to: &current)
        for sample in tick.samples { stillSince[sample.tid] = time }
        for (tid, _) in tick.running { stillSince[tid] = time }
        let alive = Set(tick.samples.map(\.tid) + tick.reused + tick.running.map(\.tid))
        current = current.filter { alive.contains($0.key) }
        stillSince = stillSince.filter { alive.contains($0.key) }
        captures += tick.samples.count + tick.running.count
        ticks.append((time, tick))
        while let first = ticks.first, time - first.time > length {
            Self.apply(first.tick, to: &before)
            ticks.removeFirst()
        }
    }

    private static func apply(_ tick: Sampler.Tick, to places: inout [Int32: ThreadSample]) {
        for sample in tick.places { places[sample.tid] = sample }
    }

    var representatives: [ThreadSample] { Array(current.values) + Array(before.values) }

    /// The window as a wall profile with its timeline.
    func document(_ symbolizer: StackSymbolizer, period: UInt64, start: UInt64, startUnixNanoseconds: Int64) -> ProfileDocument {
        let seeds = before.keys.sorted().map { before[$0]! }
        var aggregate = SampleAggregate.seeded(with: seeds)
        var timeline = TimelineRecorder(period: period)
        timeline.seed(seeds, at: ticks.first?.time ?? start)
        for (time, tick) in ticks {
            aggregate.add(tick)
            timeline.add(tick, at: time)
        }
        let records = aggregate.placed.records(symbolizer).filter { $0.count > 0 }
        var document = ProfileDocument(records: Grouper.sorted(records, addresses: .absolute))
        document.timeline = timeline.timeline(symbolizer, start: start, startUnixNanoseconds: startUnixNanoseconds)
        document.comments = ["samples: \(ticks.count) ticks of the last \(decimal(Double(length) / 1e9, places: 1)) s watched"]
        return document
    }
}

/// The conditions, looked at once a second.
struct WatchChecks {
    let pid: Int32
    let conditions: WatchConditions
    private var lastCheck: UInt64 = 0
    /// The process's CPU time (ns) at each check of the last 5 s.
    private var cpu: [(time: UInt64, used: UInt64)] = []
    private var symbolizer: (image: TargetImage, symbolizer: StackSymbolizer)?
    /// The window's captures when the waits were last looked at.
    private var lookedAt = -1
    /// Each place a waiting thread was seen at, symbolized, and what it waits for.
    private var described: [ThreadSample.Key: (stack: ThreadStack, wait: String?)] = [:]

    init(pid: Int32, conditions: WatchConditions) {
        self.pid = pid
        self.conditions = conditions
    }

    mutating func check(_ window: WatchWindow, image: TargetImage, options: SnapshotOptions, now: UInt64) -> String? {
        guard now - lastCheck >= 1_000_000_000 else { return nil }
        lastCheck = now
        if let cores = conditions.cpuCores, let used = Self.processCPU(pid) {
            cpu.append((now, used))
            cpu.removeAll { now - $0.time > 5_500_000_000 }
            if let first = cpu.first, now - first.time >= 4_500_000_000 {
                let share = Double(used - min(used, first.used)) / Double(now - first.time)
                if share >= cores {
                    return "cpu: the process used \(decimal(share * 100, places: 0)) % of a core over the last "
                        + "\(decimal(Double(now - first.time) / 1e9, places: 1)) s"
                }
            }
        }
        func describe(_ sample: ThreadSample) -> (stack: ThreadStack, wait: String?) {
            if let known = described[sample.key] { return known }
            if symbolizer?.image !== image {
                symbolizer = (image, StackSymbolizer(pid: pid, image: image, samples: Array(window.current.values), options: options))
                described = [:]
            }
            let stack = symbolizer!.symbolizer.threadStack(sample)
            let answer = (stack, ThreadWaits.waitName(stack.locations, state: stack.state))
            described[sample.key] = answer
            return answer
        }
        if conditions.deadlock, image.hasSwiftConcurrency {
            let stuck = Self.blockedASecond(window, now: now).map { tid, sample -> ThreadStack in
                var stack = describe(sample).stack
                stack.tid = tid
                stack.name = sample.name
                return stack
            }
            if let starved = Self.starvation(stuck, pid: pid, options: options) { return starved }
        }
        let waiting = window.current.filter { _, sample in
            guard let call = sample.state?.systemCall else { return false }
            return ["futex", "flock", "fcntl"].contains(call.name)
        }
        guard conditions.deadlock || conditions.stallNanoseconds != nil, !waiting.isEmpty else { return nil }
        // Nothing ran since the last look: a deadlock found then would have fired; only a stall grows.
        let unchanged = window.captures == lookedAt
        lookedAt = window.captures
        if unchanged && conditions.stallNanoseconds == nil { return nil }
        if let bound = conditions.stallNanoseconds {
            for tid in waiting.keys.sorted() {
                guard let since = window.stillSince[tid], now - since >= bound, let sample = waiting[tid],
                      let wait = describe(sample).wait, ["mutex", "rwlock", "file lock"].contains(wait) else { continue }
                // Since it was first seen there: it may have waited before the watch began.
                return "stall: thread \(NameQuoting.quoted(sample.name)) (\(tid)) has waited for a \(wait) for at least "
                    + "\(decimal(Double(now - since) / 1e9, places: 1)) s"
            }
        }
        if conditions.deadlock, !unchanged, waiting.count >= 2 {
            // A stack as its own thread's: the place may be shared with threads of other names.
            let stacks = waiting.keys.sorted().map { tid -> ThreadStack in
                var stack = describe(waiting[tid]!).stack
                stack.tid = tid
                stack.name = waiting[tid]!.name
                return stack
            }
            let snapshot = Snapshot(pid: pid, threads: stacks)
            if let cycle = Profiler.waitLines(snapshot, options: options).deadlocks.first { return cycle }
        }
        return nil
    }

    /// The threads blocked in a system call for at least a second, as long as the
    /// watch has seen them there.
    private static func blockedASecond(_ window: WatchWindow, now: UInt64) -> [(tid: Int32, sample: ThreadSample)] {
        window.current.keys.sorted().compactMap { tid -> (tid: Int32, sample: ThreadSample)? in
            guard let sample = window.current[tid], let state = sample.state, state.code == "S" || state.code == "D",
                  state.systemCall != nil, let since = window.stillSince[tid], now - since >= 1_000_000_000 else { return nil }
            return (tid, sample)
        }
    }

    /// A starved Swift pool, as dump's --fail-on-deadlock takes it: every pool thread
    /// blocked in a system call inside a job for at least a second (`stuck`: the
    /// threads blocked that long); the line says who, where, and how many tasks wait.
    private static func starvation(_ stuck: [ThreadStack], pid: Int32, options: SnapshotOptions) -> String? {
        let jobs = stuck.filter { SwiftPool.blockedJob($0, taskID: nil, taskName: nil) != nil }
        guard jobs.count >= SwiftPool().width,
              let pool = Profiler.swiftPool(Snapshot(pid: pid, threads: jobs), options: options), pool.isStarved else { return nil }
        return pool.lines(blockedTime: false).first
    }

    /// utime + stime of the whole process, in nanoseconds.
    private static func processCPU(_ pid: Int32) -> UInt64? {
        guard let stat = try? ProcFile.read("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else { return nil }
        return (user + system) * 1_000_000_000 / UInt64(max(1, sysconf(Int32(_SC_CLK_TCK))))
    }
}
