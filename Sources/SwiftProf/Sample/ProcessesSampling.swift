// Sampling several processes at once (several PIDs, a tree, a name, a cgroup,
// every process): one schedule of ticks, a Sampler a process, each process's
// samples counted and symbolized apart and marked with it. The set is looked at
// again as the run goes: a process started by one sampled is sampled from the
// next tick, found in the kernel's FORK records of its parent's threads (for a
// tree, a cgroup, every process; where perf is refused, from the tree's children
// lists at every tick), and those it started before its events were open from its
// children lists, once; /proc is listed again every second for what those miss
// (a name matched after an exec, a process that joined a cgroup). A process that
// ends keeps its samples.
import CSwiftProf

/// A process being sampled, and what it has given so far.
private final class SampledProcess {
    /// Read again at the end, and every second while young if born during the run: a
    /// child renames itself (its argv) or execs just after it is born.
    var identity: ProcessIdentity
    /// When it was first sampled, if after the run's first tick: only a process born
    /// during the run is young enough to rename itself, and is read again while young.
    var bornDuringRun: UInt64?
    /// Whether its children were listed once its events were open: a child it started
    /// before then left no FORK record.
    var childrenListed = false
    let sampler: Sampler
    let exitWatch: ProcessExitWatch
    var aggregate = SampleAggregate()
    /// The samples of the interval under way (`attach --push --push-interval`).
    var interval: SampleAggregate?
    /// Where its threads were tick by tick (`--format trace`).
    var recorder: TimelineRecorder?
    /// Its mutex waits by holder (`--profile mutex`).
    var mutexes: MutexRecorder?
    var ended = false
    /// The symbolizer of `top`'s refreshes, while the process's maps stay the same.
    var live: (image: TargetImage, symbolizer: StackSymbolizer)?

    init(identity: ProcessIdentity, sampler: Sampler) {
        self.identity = identity
        self.sampler = sampler
        exitWatch = ProcessExitWatch(pid: identity.pid)
    }

    /// Its samples so far (or the interval's), symbolized and marked with it.
    func recordsSoFar(_ options: SnapshotOptions, ofInterval: Bool = false) -> [Record] {
        guard let placed = ofInterval ? interval?.placed : aggregate.placed else { return [] }
        if live?.image !== sampler.targetImage {
            live = (sampler.targetImage, StackSymbolizer(pid: identity.pid, image: sampler.targetImage,
                                                         samples: placed.representatives, options: options))
        }
        return records(placed, live!.symbolizer)
    }

    /// Its placed samples as records, each marked with it.
    func records(_ placed: PlacedSamples, _ symbolizer: StackSymbolizer) -> [Record] {
        marked(placed.records(symbolizer))
    }

    /// Its mutex waits by holder (a mutex profile), each marked with it.
    func mutexRecords(_ symbolizer: StackSymbolizer) -> [Record] {
        marked(mutexes?.records(symbolizer) ?? [])
    }

    /// Its waits for other threads (a block profile), each marked with it.
    func blockRecords(_ placed: PlacedSamples, _ symbolizer: StackSymbolizer) -> [Record] {
        marked(placed.blockRecords(symbolizer))
    }

    private func marked(_ records: [Record]) -> [Record] {
        records.filter { $0.count > 0 }.map { record in
            var record = record
            record.processes = [identity]
            return record
        }
    }

    /// Whether the kernel tells of the processes it starts (its threads' switch records are on).
    var recordsForks: Bool { sampler.switches.map { $0.refusal == nil } ?? false }

    func renamed() {
        if let now = ProcessIdentity.read(pid: identity.pid) { identity = now }
    }
}

public struct ProcessesSamplingResult: Sendable {
    public var sampling: SamplingResult
    /// Processes sampled, in pid order; those that ended before the run did.
    public var processes: [ProcessIdentity]
    public var ended: [ProcessIdentity]
    /// Processes found but not sampled, and why (one a line).
    public var unread: [String]
    /// Each process's /proc/PID/maps as last read.
    public var memoryMapLines: [Int32: [String]] = [:]
    /// Processes found during the run by their parent's FORK record (the others by /proc).
    public var foundByForkRecords = 0

    /// The run as a one-process run's would be, when only one process was sampled
    /// (`run` of a command that never forked): no process lines, its memory map.
    public var asOneProcess: SamplingResult? {
        guard processes.count == 1, let only = processes.first else { return nil }
        var result = sampling
        result.document.pid = only.pid
        result.document.records = result.document.records.map { record in
            var record = record
            record.processes = []
            return record
        }
        result.document.comments.removeAll { $0.hasPrefix("processes sampled: ") }
        result.document.memoryMapLines = memoryMapLines[only.pid]
        return result
    }
}

extension Profiler {
    /// `endsWith`: the run ends when that process does (`run`'s command), else when every
    /// process has.
    /// `onRefresh`, when given, is called on the sampling thread every `refreshNanoseconds`
    /// with every process's records so far, symbolized and marked with it (for `top`).
    /// `onInterval`, with `options.intervalNanoseconds`, is handed every process's
    /// samples of each interval (`attach --push`): a process born during one is in it
    /// from its first tick, one that ended is in the interval of its end.
    public static func sample(processes selector: ProcessSelector, initial: [Int32], options: SamplingOptions,
                              endsWith: Int32? = nil, shouldStop: @escaping @Sendable () -> Bool,
                              onProgress: @escaping @Sendable (SamplingProgress) -> Void = { _ in },
                              refreshNanoseconds: UInt64 = 1_000_000_000,
                              onRefresh: (@Sendable ([Record], SamplingProgress) -> Void)? = nil,
                              onInterval: (@Sendable (IntervalProfile) -> Void)? = nil)
        throws(TargetError) -> ProcessesSamplingResult {
        let intervalLength = onInterval == nil ? nil : options.intervalNanoseconds
        var options = options
        if options.snapshot.sharedModules == nil { options.snapshot.sharedModules = SharedModules() }
        let startUnix = realtimeNanoseconds()
        let period = UInt64(1e9 / max(options.rate, 0.001))
        let (sampled, progress, unread, foundByForks, runStart): ([SampledProcess], SamplingProgress, [String], Int, UInt64) = try TracerThread.run {
            () throws(TargetError) -> ([SampledProcess], SamplingProgress, [String], Int, UInt64) in
            var processes: [Int32: SampledProcess] = [:]
            var order: [Int32] = []
            var unread: [Int32: String] = [:]
            var running = false
            var foundByForks = 0
            let switchRings = SwitchRings()
            func admit(_ pids: [Int32]) {
                for pid in pids where processes[pid] == nil && unread[pid] == nil {
                    guard let identity = ProcessIdentity.read(pid: pid) else { continue }
                    do {
                        let sampler = try Sampler(pid: pid, options: options.snapshot)
                        sampler.configure(options, period: period, switchRings: switchRings)
                        let process = SampledProcess(identity: identity, sampler: sampler)
                        if intervalLength != nil { process.interval = SampleAggregate(listsReusedThreads: true) }
                        if running { process.bornDuringRun = monotonicNanoseconds() }
                        if options.recordsTimeline { process.recorder = TimelineRecorder(period: period) }
                        if options.profile == .mutex { process.mutexes = MutexRecorder(memory: sampler.targetImage.memory) }
                        processes[pid] = process
                        order.append(pid)
                    } catch {
                        switch error {
                        case .noSuchProcess, .zombie, .exitedDuringCapture, .mainThreadEnded, .kernelThread: break
                        default: unread[pid] = "process \(pid) not sampled: \(error.description)"
                        }
                    }
                }
            }
            if options.kernelSampling { raiseDescriptorLimit() }
            admit(initial)
            running = true
            guard !processes.isEmpty else {
                throw TargetError.noSuchProcess(pid: initial.first ?? 0)
            }
            var progress = SamplingProgress()
            var timely = TimelyTicks(wanted: false)
            defer { timely.end() }
            _ = sp_set_timer_slack(1)
            var jitter = SystemRandomNumberGenerator()
            let start = monotonicNanoseconds()
            var due = start
            var lastReport = start
            var lastListing = start
            var lastRefresh = start
            var refreshed = false
            var intervalStart = (monotonic: start, unix: startUnix, samples: 0)
            func endInterval(at now: UInt64) {
                guard let onInterval, intervalLength != nil else { return }
                let records = order.flatMap { processes[$0]!.recordsSoFar(options.snapshot, ofInterval: true) }
                if progress.samples > intervalStart.samples && !records.isEmpty {
                    onInterval(IntervalProfile(records: Grouper.sorted(records, addresses: .absolute), memoryMapLines: [],
                                               startUnixNanoseconds: intervalStart.unix,
                                               durationNanoseconds: Int64(now - intervalStart.monotonic)))
                }
                for process in processes.values { process.interval = process.ended ? nil : process.interval?.nextInterval() }
                intervalStart = (now, intervalStart.unix + Int64(now - intervalStart.monotonic), progress.samples)
            }
            while !shouldStop() {
                let now = monotonicNanoseconds()
                if let duration = options.durationNanoseconds, now - start >= duration { break }
                // New members: those the kernel saw started by a sampled process; a tree's
                // from its children lists at every tick where perf records no FORK; and
                // whatever /proc lists every second.
                if selector.followsForks {
                    let before = processes.count
                    admit(order.flatMap { processes[$0]!.sampler.switches?.takeChildProcesses() ?? [] })
                    foundByForks += processes.count - before
                }
                let listing = now - lastListing >= 1_000_000_000
                if case .children(let root) = selector,
                   listing || processes.values.contains(where: { !$0.ended && !$0.recordsForks }) {
                    admit(ProcessSelection.descendants(of: root))
                }
                if listing {
                    lastListing = now
                    if selector.isListedAgain {
                        admit((try? ProcessSelection.resolve(selector, skipping: Set(processes.keys).union(unread.keys)))?.pids ?? [])
                    }
                    // A child rewrites its argv, or execs, just after its birth.
                    for process in processes.values where !process.ended && process.bornDuringRun.map({ now - $0 < 3_000_000_000 }) == true {
                        process.renamed()
                    }
                }
                let measured = timely.priority == .realtime
                let cpuBefore = measured ? threadCPUNanoseconds() : 0
                var threads = 0
                for pid in order {
                    let process = processes[pid]!
                    guard !process.ended else { continue }
                    let tick: Sampler.Tick
                    do { tick = try process.sampler.sampleOnce(due: due) } catch {
                        process.ended = process.exitWatch.hasExited
                        continue
                    }
                    if tick.isEmpty && process.exitWatch.hasExited {
                        process.ended = true
                        continue
                    }
                    process.sampler.releasePending()
                    process.aggregate.add(tick)
                    process.interval?.add(tick)
                    process.recorder?.add(tick, at: due)
                    process.mutexes?.add(tick)
                    threads += tick.watched
                }
                if selector.followsForks {
                    for pid in order where !processes[pid]!.childrenListed {
                        processes[pid]!.childrenListed = true
                        admit(ProcessSelection.descendants(of: pid))
                    }
                }
                let worked = measured ? threadCPUNanoseconds() - cpuBefore : 0
                if processes.values.allSatisfy(\.ended) || endsWith.flatMap({ processes[$0]?.ended }) == true { break }
                progress.samples += 1
                progress.threads = threads
                let after = monotonicNanoseconds()
                if progress.samples == 1 {
                    progress.firstPassNanoseconds = after - start
                    due = after
                    timely = TimelyTicks(wanted: processes.values.contains { process in
                        process.sampler.switches?.refusal != nil || process.sampler.switches == nil
                            || process.sampler.kernelSamples == nil
                    })
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
                    account(&progress, processes.values, switchRings)
                    onProgress(progress)
                }
                if let onRefresh, after - lastRefresh >= refreshNanoseconds {
                    lastRefresh = after
                    account(&progress, processes.values, switchRings)
                    onRefresh(order.flatMap { processes[$0]!.recordsSoFar(options.snapshot) }, progress)
                    refreshed = true
                }
                if let intervalLength, after - intervalStart.monotonic >= intervalLength { endInterval(at: after) }
                sleep(until: due, end: options.durationNanoseconds.map { start + $0 }, shouldStop: shouldStop)
            }
            for process in processes.values {
                process.sampler.releasePending()
                if !process.ended { process.renamed() }
            }
            progress.elapsedNanoseconds = monotonicNanoseconds() - start
            endInterval(at: start + progress.elapsedNanoseconds)
            progress.tickPriority = timely.priority
            account(&progress, processes.values, switchRings)
            return (order.map { processes[$0]! }, progress, unread.keys.sorted().map { unread[$0]! }, foundByForks, start)
        }
        var records: [Record] = []
        var failures: [ThreadFailure] = []
        var timeline = options.recordsTimeline ? Timeline(stacks: [], tracks: [], startUnixNanoseconds: startUnix) : nil
        for process in sampled {
            // A symbolizer of every sample's pcs, not top's of the first refresh's.
            let placed = process.aggregate.placed
            let symbolizer = StackSymbolizer(pid: process.identity.pid, image: process.sampler.targetImage,
                                             samples: placed.representatives, options: options.snapshot)
            switch options.profile {
            case .samples: records += process.records(placed, symbolizer)
            case .block: records += process.blockRecords(placed, symbolizer)
            case .mutex: records += process.mutexRecords(symbolizer)
            }
            failures += process.sampler.failures.values.sorted { $0.tid < $1.tid }
            if let own = process.recorder?.timeline(symbolizer, start: runStart, process: process.identity,
                                                    startUnixNanoseconds: startUnix) {
                timeline?.append(own)
            }
        }
        let seconds = Double(progress.elapsedNanoseconds) / 1e9
        var document = ProfileDocument(records: Grouper.sorted(records, addresses: .absolute), failures: failures)
        document.timeline = timeline
        options.markSampledTime(&document, elapsedNanoseconds: progress.elapsedNanoseconds, startUnixNanoseconds: startUnix)
        let ended = sampled.filter(\.ended).map(\.identity)
        let samplesLine: String = "samples: \(progress.samples) at \(formatRate(options.rate)) Hz (jittered) over "
            + "\(decimal(seconds, places: 1)) s, mode \(options.mode.rawValue), \(progress.lossSummary)"
            + (progress.tickPriorityNote.map { "; \($0)" } ?? "")
        let processesLine: String = "processes sampled: \(sampled.count)"
            + (ended.isEmpty ? "" : ", \(ended.count) ended during the run")
        document.comments = [samplesLine, processesLine, "capture: \(progress.paths.summary)"]
            + [options.snapshot.capture.threadNames.comment].compactMap { $0 }
        let exited = ended.count == sampled.count || ended.contains { $0.pid == endsWith }
        let result = SamplingResult(document: document, progress: progress, targetExited: exited,
                                    wasStopped: sampled.contains { $0.sampler.sawGroupStop }, kernelNote: nil,
                                    startUnixNanoseconds: startUnix)
        return ProcessesSamplingResult(sampling: result, processes: sampled.map(\.identity).sorted(), ended: ended.sorted(),
                                       unread: unread,
                                       memoryMapLines: Dictionary(sampled.map { ($0.identity.pid, $0.sampler.targetImage.memoryMap.documentLines(pid: $0.identity.pid)) },
                                                                  uniquingKeysWith: { a, _ in a }),
                                       foundByForkRecords: foundByForks)
    }

    /// Every process's counts, summed into `progress`.
    private static func account(_ progress: inout SamplingProgress, _ processes: Dictionary<Int32, SampledProcess>.Values,
                                _ switchRings: SwitchRings) {
        var paths = CaptureCounts()
        var unreadable = 0
        var lostRecords = switchRings.lost
        var remembered = 0
        for process in processes {
            var own = SamplingProgress()
            process.sampler.account(&own)
            paths.add(own.paths)
            unreadable += own.unreadable
            lostRecords += own.lostKernelRecords
            remembered += own.rememberedWalks
        }
        progress.paths = paths
        progress.unreadable = unreadable
        progress.lostKernelRecords = lostRecords
        progress.rememberedWalks = remembered
    }
}
