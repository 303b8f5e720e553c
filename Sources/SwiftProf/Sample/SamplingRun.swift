// `attach` and `run`: sample at a rate until the duration ends, the caller asks
// to stop, or the target exits. Ticks keep to the schedule (the next one is due
// one interval after the last was due, not after it ended); when a sample takes
// longer than that, the ticks it overran are counted as lost. Each interval is
// drawn uniformly between half and one and a half periods: a fixed rate would
// land on the same phase of periodic work every time (a 20 ms cycle sampled
// every 10 ms), the jitter spreads the ticks over every phase, and the mean rate
// stays the one asked for.
import CSwiftProf
import Glibc

/// What a sampling run counts.
public enum SampledProfile: String, Sendable, CaseIterable {
    /// Every sample the mode takes.
    case samples
    /// The time threads spent waiting for another thread (a lock, a condition
    /// variable, a semaphore, a join, a futex word, a file lock), under the waiter's
    /// stack: Go's block profile, contentions and delay.
    case block
    /// The time threads wait for a glibc mutex, under the stack of the thread that
    /// held it: Go's mutex profile.
    case mutex
}

public enum SamplingMode: String, Sendable, CaseIterable {
    /// Every thread at every tick, blocked or not: where the time goes.
    case wall
    /// Only threads on a CPU at the tick (where the kernel records switches; else
    /// those runnable or on a CPU, state R), as perf and py-spy without --idle
    /// count: where the CPU goes.
    case cpu
}

public struct SamplingOptions: Sendable {
    public var snapshot = SnapshotOptions()
    /// Samples a second.
    public var rate: Double = 100
    /// How long to sample; nil: until asked to stop or the target exits.
    public var durationNanoseconds: UInt64?
    /// Running threads from the kernel's perf_event samples instead of ptrace stops
    /// (where perf_event_open is allowed).
    public var kernelSampling = true
    public var mode = SamplingMode.wall
    /// Every this often the samples of the interval just ended are handed over, as
    /// a profile of their own (`attach --push`); nil: never.
    public var intervalNanoseconds: UInt64?
    /// Keep where each thread was at each tick, for a timeline (`--format trace`).
    public var recordsTimeline = false
    /// What the run's profile counts: every sample, or only the waits for other
    /// threads (Go's block profile: `--profile block`, wall-clock ticks).
    public var profile = SampledProfile.samples

    public init() {}

    /// A sampled run's document carries what was sampled (the clock, the tick period
    /// each sample stands for, the time covered), so that its pprof says "Type: cpu"
    /// or "wall" in seconds, as serve's do; a block or mutex profile's also says so
    /// by its name ("contention", as Go's text names it), its delays on the wall clock.
    func markSampledTime(_ document: inout ProfileDocument, elapsedNanoseconds: UInt64, startUnixNanoseconds: Int64) {
        if profile != .samples { document.profileName = "contention" }
        document.sampledTime = PprofProto.SampledTime(mode: profile == .samples ? mode : .wall, rate: rate,
                                                      durationNanoseconds: Int64(elapsedNanoseconds),
                                                      startUnixNanoseconds: startUnixNanoseconds)
    }
}

/// The samples of one interval of a run, symbolized: a profile of that stretch alone.
public struct IntervalProfile: Sendable {
    public var records: [Record]
    public var memoryMapLines: [String]
    public var startUnixNanoseconds: Int64
    public var durationNanoseconds: Int64
}

public struct SamplingProgress: Sendable {
    public var elapsedNanoseconds: UInt64 = 0
    /// Ticks taken: each samples every thread once.
    public var samples = 0
    /// The threads the last tick looked at (in CPU mode, running or not).
    public var threads = 0
    /// Ticks that could not be taken on time (after the first pass).
    public var lost = 0
    /// Of those, the ticks lost while a refresh (top's screen) was drawn.
    public var lostDrawing = 0
    /// How long the first pass took: it copies every thread, later ones only those that ran.
    public var firstPassNanoseconds: UInt64 = 0
    /// perf records the kernel dropped because a ring was full.
    public var lostKernelRecords: UInt64 = 0
    /// Thread captures that failed (a thread that would not stop in time, say).
    public var unreadable = 0
    public var paths = CaptureCounts()
    /// Stack walks answered by the unwinder's memo (WalkMemo) instead of libunwind.
    public var rememberedWalks = 0
    public var tickPriority = TickPriority.normal

    /// "lost 0 ticks" and, where there were any, the records and threads lost too.
    public var lossSummary: String {
        var parts = ["lost \(lost) ticks"]
        if lostKernelRecords > 0 { parts.append("\(lostKernelRecords) kernel records") }
        if unreadable > 0 { parts.append("\(unreadable) thread captures") }
        return parts.joined(separator: ", ")
    }

    /// Said where looks depend on it: /proc read at the tick, without switch records.
    public var tickPriorityNote: String? {
        switch tickPriority {
        case .normal: nil
        case .realtime: "ticks at real-time priority"
        case .refused: "ticks at normal priority (real time refused): short bursts may be undercounted"
        case .dropped: "ticks back at normal priority (their work took over a quarter of the time)"
        }
    }
}

public struct SamplingResult: Sendable {
    public var document: ProfileDocument
    public var progress: SamplingProgress
    /// The target ended before the sampling did.
    public var targetExited: Bool
    public var wasStopped: Bool
    public var kernelNote: String?
    /// When the first tick was taken, since the Unix epoch.
    public var startUnixNanoseconds: Int64
    /// `attach --push`: uploads that failed after their retries (set by the caller).
    public var failedUploads = 0
}

extension Profiler {
    /// `onRefresh`, when given, is called on the sampling thread every
    /// `refreshNanoseconds` with the records so far, symbolized (for `top`).
    public static func sample(pid: Int32, options: SamplingOptions, shouldStop: @escaping @Sendable () -> Bool,
                              onProgress: @escaping @Sendable (SamplingProgress) -> Void = { _ in },
                              refreshNanoseconds: UInt64 = 1_000_000_000,
                              onRefresh: (@Sendable ([Record], SamplingProgress) -> Void)? = nil,
                              onInterval: (@Sendable (IntervalProfile) -> Void)? = nil)
        throws(TargetError) -> SamplingResult {
        let startUnix = realtimeNanoseconds()
        let (aggregate, progress, exited, image, failures, wasStopped, recorder, runStart, mutexes) = try TracerThread.run {
            () throws(TargetError) -> (SampleAggregate, SamplingProgress, Bool, TargetImage, [ThreadFailure], Bool, TimelineRecorder?,
                                       UInt64, MutexRecorder?) in
            let sampler = try Sampler(pid: pid, options: options.snapshot)
            var aggregate = SampleAggregate()
            var progress = SamplingProgress()
            let period = UInt64(1e9 / max(options.rate, 0.001))
            sampler.configure(options, period: period)
            // Two or three descriptors a thread: a process of thousands passes the usual soft limit.
            if options.kernelSampling { raiseDescriptorLimit() }
            var timely = TimelyTicks(wanted: false)
            defer { timely.end() }
            // Wake at the tick itself: with the default 50 us of timer slack the kernel
            // moves a wake-up onto another timer that expires in that window, such as a
            // periodic target's own, and the ticks then land where it wakes up
            // (measured: bursts of 0.23 ms every 1 ms found on a CPU 0.33 of the time, 0.28 true).
            _ = sp_set_timer_slack(1)
            var jitter = SystemRandomNumberGenerator()
            let start = monotonicNanoseconds()
            var due = start
            var lastReport = start
            var lastRefresh = start
            var refreshed = false
            var liveSymbolizer: (image: TargetImage, symbolizer: StackSymbolizer)?
            // One symbolizer while the maps stay the same: each pc is looked up once.
            func symbolizer(for samples: [ThreadSample]) -> StackSymbolizer {
                if liveSymbolizer?.image !== sampler.targetImage {
                    liveSymbolizer = (sampler.targetImage, StackSymbolizer(pid: pid, image: sampler.targetImage, samples: samples,
                                                                           options: options.snapshot))
                }
                return liveSymbolizer!.symbolizer
            }
            // The interval's own samples, counted beside the run's: handed over and
            // started again at each interval's end.
            var interval = onInterval != nil && options.intervalNanoseconds != nil ? SampleAggregate(listsReusedThreads: true) : nil
            var intervalStart = (monotonic: start, unix: startUnix, samples: 0)
            func endInterval(at now: UInt64) {
                guard let current = interval, let onInterval else { return }
                let placed = current.placed
                let records = placed.records(symbolizer(for: placed.representatives)).filter { $0.count > 0 }
                if progress.samples > intervalStart.samples {
                    onInterval(IntervalProfile(records: Grouper.sorted(records, addresses: .absolute),
                                               memoryMapLines: sampler.targetImage.memoryMap.documentLines(pid: pid),
                                               startUnixNanoseconds: intervalStart.unix,
                                               durationNanoseconds: Int64(now - intervalStart.monotonic)))
                }
                interval = current.nextInterval()
                intervalStart = (now, intervalStart.unix + Int64(now - intervalStart.monotonic), progress.samples)
            }
            var recorder = options.recordsTimeline ? TimelineRecorder(period: period) : nil
            var mutexes = options.profile == .mutex ? MutexRecorder(memory: sampler.targetImage.memory) : nil
            var exited = false
            let exitWatch = ProcessExitWatch(pid: pid)
            while !shouldStop() {
                let now = monotonicNanoseconds()
                if let duration = options.durationNanoseconds, now - start >= duration { break }
                // A tick's own CPU time matters only to real-time ticks (two system calls).
                let measured = timely.priority == .realtime
                let cpuBefore = measured ? threadCPUNanoseconds() : 0
                let tick = try sampler.sampleOnce(due: due)
                let worked = measured ? threadCPUNanoseconds() - cpuBefore : 0
                // Asked when nothing was sampled, and every 16 ticks anyway: a thread reused
                // from its switch records needs no read that would fail once it is gone.
                if (tick.isEmpty || progress.samples % 16 == 15) && exitWatch.hasExited {
                    exited = true
                    break
                }
                sampler.releasePending()
                aggregate.add(tick)
                interval?.add(tick)
                recorder?.add(tick, at: due)
                mutexes?.add(tick)
                progress.samples += 1
                progress.threads = tick.watched
                let after = monotonicNanoseconds()
                if progress.samples == 1 {
                    // The first pass copies every thread once (0.65 s at 1,000 threads):
                    // the schedule starts after it, its length is said apart.
                    progress.firstPassNanoseconds = after - start
                    due = after
                    // Known once every thread was tracked or refused. Running threads that
                    // are stopped rather than sampled by the kernel (--no-perf, a Swift
                    // program) must be stopped at the tick, not when the sampler gets a CPU.
                    timely = TimelyTicks(wanted: sampler.switches?.refusal != nil || sampler.switches == nil
                                             || sampler.kernelSamples == nil)
                } else {
                    timely.account(workNanoseconds: worked, periodNanoseconds: period)
                }
                let lostBefore = progress.lost
                due = nextTick(after: due, now: after, period: period, jitter: &jitter, lost: &progress.lost)
                if refreshed { progress.lostDrawing += progress.lost - lostBefore }
                refreshed = false
                progress.elapsedNanoseconds = after - start
                if after - lastReport >= 200_000_000 {
                    lastReport = after
                    sampler.account(&progress)
                    onProgress(progress)
                }
                if let onRefresh, after - lastRefresh >= refreshNanoseconds {
                    lastRefresh = after
                    let placed = aggregate.placed
                    let symbolizer = symbolizer(for: placed.representatives)
                    sampler.account(&progress)
                    onRefresh(placed.records(symbolizer), progress)
                    refreshed = true
                }
                if let length = options.intervalNanoseconds, after - intervalStart.monotonic >= length { endInterval(at: after) }
                sleep(until: due, end: options.durationNanoseconds.map { start + $0 }, shouldStop: shouldStop)
            }
            sampler.releasePending()
            progress.elapsedNanoseconds = monotonicNanoseconds() - start
            endInterval(at: start + progress.elapsedNanoseconds)
            // Said once, at the end: only the profile's comment and --stats show it.
            progress.tickPriority = timely.priority
            sampler.account(&progress)
            return (aggregate, progress, exited, sampler.targetImage, sampler.failures.values.sorted { $0.tid < $1.tid },
                    sampler.sawGroupStop, recorder, start, mutexes)
        }
        let placed = aggregate.placed
        let symbolizer = StackSymbolizer(pid: pid, image: image, samples: placed.representatives, options: options.snapshot)
        let records = switch options.profile {
        case .samples: placed.records(symbolizer)
        case .block: placed.blockRecords(symbolizer)
        case .mutex: mutexes?.records(symbolizer) ?? []
        }
        let seconds = Double(progress.elapsedNanoseconds) / 1e9
        var document = ProfileDocument(pid: pid, records: Grouper.sorted(records, addresses: .absolute),
                                       memoryMapLines: image.memoryMap.documentLines(pid: pid), failures: failures)
        document.timeline = recorder?.timeline(symbolizer, start: runStart, startUnixNanoseconds: startUnix)
        options.markSampledTime(&document, elapsedNanoseconds: progress.elapsedNanoseconds, startUnixNanoseconds: startUnix)
        document.comments = [
            "samples: \(progress.samples) at \(formatRate(options.rate)) Hz (jittered) over \(decimal(seconds, places: 1)) s, "
                + "mode \(options.mode.rawValue), \(progress.lossSummary)"
                + (progress.tickPriorityNote.map { "; \($0)" } ?? ""),
            "capture: \(progress.paths.summary)",
        ] + [options.snapshot.capture.threadNames.comment].compactMap { $0 }
        return SamplingResult(document: document, progress: progress, targetExited: exited, wasStopped: wasStopped,
                              kernelNote: symbolizer.kernelNote, startUnixNanoseconds: startUnix)
    }

    /// When the tick after the one `due` is: half a period to one and a half after it;
    /// the ticks `now` has already overrun are counted as lost and skipped.
    static func nextTick(after due: UInt64, now: UInt64, period: UInt64, jitter: inout SystemRandomNumberGenerator,
                         lost: inout Int) -> UInt64 {
        var next = due + period / 2 + UInt64.random(in: 0..<period, using: &jitter)
        if now > next {
            let missed = Int((now - next) / period)
            lost += missed
            next += UInt64(missed) * period
        }
        return next
    }

    /// Sleeps in short slices, so that a stop request is seen within 20 ms.
    static func sleep(until due: UInt64, end: UInt64?, shouldStop: () -> Bool) {
        let target = min(due, end ?? due)
        while !shouldStop() {
            let now = monotonicNanoseconds()
            if now >= target { return }
            nanosleep(nanoseconds: min(target - now, 20_000_000))
        }
    }

    /// The soft limit on open descriptors up to the hard one, as perf does.
    static func raiseDescriptorLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }

    static func processIsGone(_ pid: Int32) -> Bool {
        // The leader's own stat: the process's sums the times of all its threads
        // (a third of a millisecond at 1,000 threads); its state is the leader's.
        guard let status = try? TaskStatus.read(pid: pid, tid: pid) else { return true }
        return status.isZombie && threadIDs(of: pid).count <= 1
    }

    static func formatRate(_ rate: Double) -> String {
        rate == rate.rounded() ? String(Int(rate)) : String(rate)
    }
}

/// Identical samples counted together, in the order first seen.
///
/// A thread found running at a tick, whose stack the kernel samples, is counted
/// as running at that tick; where it was is drawn from the kernel's samples of it
/// over the run: its running ticks are spread over its distinct sampled stacks in
/// proportion to how often each was sampled (largest remainders, so the counts
/// add up to the ticks exactly). The kernel samples every period of the thread's
/// own CPU time, so those proportions are its CPU time's, and the ticks say how
/// much of the wall-clock time that was.
struct SampleAggregate {
    fileprivate struct Entry {
        var sample: ThreadSample
        var count: Int
        var tids: Set<Int32>
        var names: Set<String>
        /// Times a thread was captured here afresh (it had run since its sample before).
        var captures = 0
    }

    private var entries: [Entry] = []
    private var slots: [ThreadSample.Key: Int] = [:]
    /// An interval's aggregate starts with the last samples of the one before: the
    /// threads reused into them must then be listed as they are counted.
    private let listsReusedThreads: Bool
    private var lastName: [Int32: String] = [:]

    init(listsReusedThreads: Bool = false) { self.listsReusedThreads = listsReusedThreads }
    /// Where each thread's last sample was counted: a reused sample is the same
    /// sample again, so it is counted there without hashing its stack.
    private var lastSlot: [Int32: Int] = [:]
    /// Per thread: the ticks it was running at, and the kernel's samples of it.
    private var running: [Int32: (ticks: Int, name: String, stacks: [ThreadSample.Key: (sample: ThreadSample, count: Int)])] = [:]

    mutating func add(_ tick: Sampler.Tick) {
        add(tick.samples)
        for tid in tick.reused {
            guard let slot = lastSlot[tid] else { continue }
            entries[slot].count += 1
            if listsReusedThreads {
                entries[slot].tids.insert(tid)
                if let name = lastName[tid], !name.isEmpty { entries[slot].names.insert(name) }
            }
        }
        for (tid, name) in tick.running {
            running[tid, default: (0, name, [:])].ticks += 1
            running[tid]!.name = name
        }
        for sample in tick.kernelSamples {
            running[sample.tid, default: (0, sample.name, [:])].stacks[sample.key, default: (sample, 0)].count += 1
        }
    }

    mutating func add(_ samples: [ThreadSample]) {
        for sample in samples {
            let slot = add(sample, count: 1)
            entries[slot].captures += 1
            lastSlot[sample.tid] = slot
            if listsReusedThreads { lastName[sample.tid] = sample.name }
        }
    }

    /// An aggregate that starts with these threads where they were (count 0): a
    /// window of ticks whose first reuses samples taken before it (`watch`).
    static func seeded(with samples: [ThreadSample]) -> SampleAggregate {
        var seeded = SampleAggregate()
        for sample in samples {
            let slot = seeded.add(sample, count: 0)
            seeded.lastSlot[sample.tid] = slot
        }
        return seeded
    }

    /// The next interval's aggregate: nothing counted, but each thread's last sample
    /// in place (count 0), so that a thread reused at its next tick is counted there.
    func nextInterval() -> SampleAggregate {
        var next = SampleAggregate(listsReusedThreads: true)
        for (tid, slot) in lastSlot.sorted(by: { $0.key < $1.key }) {
            let sample = entries[slot].sample
            if let known = next.slots[sample.key] {
                next.lastSlot[tid] = known
            } else {
                next.slots[sample.key] = next.entries.count
                next.entries.append(Entry(sample: sample, count: 0, tids: [], names: []))
                next.lastSlot[tid] = next.entries.count - 1
            }
            next.lastName[tid] = lastName[tid]
        }
        return next
    }

    /// Counts `sample` `count` times; its slot.
    @discardableResult
    private mutating func add(_ sample: ThreadSample, count: Int) -> Int {
        let key = sample.key
        if let slot = slots[key] {
            entries[slot].count += count
            entries[slot].tids.insert(sample.tid)
            if !sample.name.isEmpty { entries[slot].names.insert(sample.name) }
            if let state = entries[slot].sample.state, let other = sample.state {
                entries[slot].sample.state = Grouper.merge(state, other)
            }
            return slot
        }
        slots[key] = entries.count
        entries.append(Entry(sample: sample, count: count, tids: [sample.tid], names: sample.name.isEmpty ? [] : [sample.name]))
        return entries.count - 1
    }

    /// The samples and, for each running thread, its ticks spread over its stacks.
    var placed: PlacedSamples {
        var all = self
        for tid in running.keys.sorted() {
            let thread = running[tid]!
            guard thread.ticks > 0 else { continue }
            let stacks = thread.stacks.values.sorted { $0.count != $1.count ? $0.count > $1.count : $0.sample.pcs.lexicographicallyPrecedes($1.sample.pcs) }
            let sampled = stacks.reduce(0) { $0 + $1.count }
            guard sampled > 0 else {
                // Ran less than a period of CPU in all: no sample of it. Its last
                // captured stack (a stop at the tick it was first seen running) stands in.
                if let slot = lastSlot[tid] { all.entries[slot].count += thread.ticks }
                continue
            }
            var shares = stacks.map { (sample: $0.sample, whole: thread.ticks * $0.count / sampled,
                                       remainder: thread.ticks * $0.count % sampled) }
            var left = thread.ticks - shares.reduce(0) { $0 + $1.whole }
            for index in shares.indices.sorted(by: { (shares[$0].remainder, $1) > (shares[$1].remainder, $0) }) where left > 0 {
                shares[index].whole += 1
                left -= 1
            }
            for share in shares where share.whole > 0 {
                var sample = share.sample
                sample.name = thread.name
                all.add(sample, count: share.whole)
            }
        }
        return PlacedSamples(entries: all.entries)
    }
}

/// Every sample counted where it belongs, running ticks included.
struct PlacedSamples {
    fileprivate let entries: [SampleAggregate.Entry]

    var representatives: [ThreadSample] { entries.map(\.sample) }

    func records(_ symbolizer: StackSymbolizer) -> [Record] {
        entries.map { entry in
            let (locations, state) = symbolizer.stack(entry.sample)
            var record = Record(count: entry.count, locations: locations, truncation: symbolizer.truncation(entry.sample),
                                threadIDs: entry.tids.sorted(), state: state, threadNames: entry.names.sorted())
            record.labels = symbolizer.taskLabels(entry.sample).merging(entry.sample.goLabels) { task, _ in task }
            return record
        }
    }

    /// A block profile's records: the samples of threads waiting for another thread
    /// (a lock, a condition variable, a semaphore, a join, a futex word, a file
    /// lock), each labelled with its wait; the count is of ticks (the delay is that
    /// many periods), `contentions` of the waits seen.
    func blockRecords(_ symbolizer: StackSymbolizer) -> [Record] {
        zip(entries, records(symbolizer)).compactMap { entry, record in
            guard record.count > 0, let wait = ThreadWaits.waitName(record.locations, state: record.state) else { return nil }
            var record = record
            record.state?.wait = wait
            record.contentions = max(1, entry.captures)
            return record
        }
    }
}

func nanosleep(nanoseconds: UInt64) {
    var request = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
    _ = Glibc.nanosleep(&request, nil)
}
