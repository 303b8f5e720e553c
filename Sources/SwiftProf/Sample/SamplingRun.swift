// `attach` and `run`: sample at a fixed rate until the duration ends, the
// caller asks to stop, or the target exits. Ticks keep to the schedule (the
// next one is due one period after the last was due, not after it ended); when
// a sample takes longer than a period, the ticks it overran are counted as lost.
import Glibc

public struct SamplingOptions: Sendable {
    public var snapshot = SnapshotOptions()
    /// Samples a second.
    public var rate: Double = 100
    /// How long to sample; nil: until asked to stop or the target exits.
    public var durationNanoseconds: UInt64?
    /// Running threads from the kernel's perf_event samples instead of ptrace stops
    /// (where perf_event_open is allowed).
    public var kernelSampling = true

    public init() {}
}

public struct SamplingProgress: Sendable {
    public var elapsedNanoseconds: UInt64 = 0
    /// Ticks taken: each samples every thread once.
    public var samples = 0
    /// Threads seen in the last tick.
    public var threads = 0
    /// Ticks that could not be taken on time.
    public var lost = 0
    public var paths = CaptureCounts()
}

public struct SamplingResult: Sendable {
    public var document: ProfileDocument
    public var progress: SamplingProgress
    /// The target ended before the sampling did.
    public var targetExited: Bool
    public var wasStopped: Bool
    public var kernelNote: String?
}

extension Profiler {
    /// `onRefresh`, when given, is called on the sampling thread every
    /// `refreshNanoseconds` with the records so far, symbolized (for `top`).
    public static func sample(pid: Int32, options: SamplingOptions, shouldStop: @escaping @Sendable () -> Bool,
                              onProgress: @escaping @Sendable (SamplingProgress) -> Void = { _ in },
                              refreshNanoseconds: UInt64 = 1_000_000_000,
                              onRefresh: (@Sendable ([Record], SamplingProgress) -> Void)? = nil)
        throws(TargetError) -> SamplingResult {
        let (aggregate, progress, exited, image, failures, wasStopped) = try TracerThread.run {
            () throws(TargetError) -> (SampleAggregate, SamplingProgress, Bool, TargetImage, [ThreadFailure], Bool) in
            let sampler = try Sampler(pid: pid, options: options.snapshot)
            var aggregate = SampleAggregate()
            var progress = SamplingProgress()
            let period = UInt64(1e9 / max(options.rate, 0.001))
            if options.kernelSampling {
                sampler.kernelSamples = KernelSamples(periodNanoseconds: period, stackBytes: options.snapshot.capture.stackBytes)
            }
            let start = monotonicNanoseconds()
            var due = start
            var lastReport = start
            var lastRefresh = start
            var liveSymbolizer: (image: TargetImage, symbolizer: StackSymbolizer)?
            var exited = false
            while !shouldStop() {
                let now = monotonicNanoseconds()
                if let duration = options.durationNanoseconds, now - start >= duration { break }
                let samples = try sampler.sampleOnce()
                if samples.isEmpty && processIsGone(pid) {
                    exited = true
                    break
                }
                sampler.releasePending()
                aggregate.add(samples)
                progress.samples += 1
                progress.threads = samples.count
                progress.paths = sampler.counts
                due += period
                let after = monotonicNanoseconds()
                if after > due {
                    let missed = Int((after - due) / period)
                    progress.lost += missed
                    due += UInt64(missed) * period
                }
                progress.elapsedNanoseconds = after - start
                if after - lastReport >= 200_000_000 {
                    lastReport = after
                    onProgress(progress)
                }
                if let onRefresh, after - lastRefresh >= refreshNanoseconds {
                    lastRefresh = after
                    // One symbolizer while the maps stay the same: each pc is looked up once.
                    if liveSymbolizer?.image !== sampler.targetImage {
                        liveSymbolizer = (sampler.targetImage, StackSymbolizer(pid: pid, image: sampler.targetImage,
                                                                               samples: aggregate.representatives,
                                                                               options: options.snapshot))
                    }
                    onRefresh(aggregate.records(liveSymbolizer!.symbolizer), progress)
                }
                sleep(until: due, end: options.durationNanoseconds.map { start + $0 }, shouldStop: shouldStop)
            }
            sampler.releasePending()
            progress.elapsedNanoseconds = monotonicNanoseconds() - start
            progress.paths = sampler.counts
            return (aggregate, progress, exited, sampler.targetImage, sampler.failures.values.sorted { $0.tid < $1.tid },
                    sampler.sawGroupStop)
        }
        let symbolizer = StackSymbolizer(pid: pid, image: image, samples: aggregate.representatives, options: options.snapshot)
        let records = aggregate.records(symbolizer)
        let seconds = Double(progress.elapsedNanoseconds) / 1e9
        var document = ProfileDocument(pid: pid, records: Grouper.sorted(records, addresses: .absolute),
                                       memoryMapLines: image.memoryMap.regions.map(\.line), failures: failures)
        document.comments = [
            "samples: \(progress.samples) at \(formatRate(options.rate)) Hz over \(decimal(seconds, places: 1)) s, lost \(progress.lost)",
            "capture: \(progress.paths.summary)",
        ]
        return SamplingResult(document: document, progress: progress, targetExited: exited, wasStopped: wasStopped,
                              kernelNote: symbolizer.kernelNote)
    }

    /// Sleeps in short slices, so that a stop request is seen within 20 ms.
    private static func sleep(until due: UInt64, end: UInt64?, shouldStop: () -> Bool) {
        let target = min(due, end ?? due)
        while !shouldStop() {
            let now = monotonicNanoseconds()
            if now >= target { return }
            nanosleep(nanoseconds: min(target - now, 20_000_000))
        }
    }

    static func processIsGone(_ pid: Int32) -> Bool {
        guard let status = try? TaskStatus.read(pid: pid) else { return true }
        return status.isZombie && threadIDs(of: pid).count <= 1
    }

    static func formatRate(_ rate: Double) -> String {
        rate == rate.rounded() ? String(Int(rate)) : String(rate)
    }
}

/// Identical samples counted together, in the order first seen.
struct SampleAggregate {
    private struct Entry {
        var sample: ThreadSample
        var count: Int
        var tids: Set<Int32>
        var names: Set<String>
    }

    private var entries: [Entry] = []
    private var slots: [ThreadSample.Key: Int] = [:]
    /// Where each thread's last sample was counted: a reused sample is the same
    /// sample again, so it is counted there without hashing its stack.
    private var lastSlot: [Int32: Int] = [:]

    mutating func add(_ samples: [ThreadSample]) {
        for sample in samples {
            if sample.path == .reused, let slot = lastSlot[sample.tid] {
                entries[slot].count += 1
                continue
            }
            let key = sample.key
            if let slot = slots[key] {
                entries[slot].count += 1
                entries[slot].tids.insert(sample.tid)
                if !sample.name.isEmpty { entries[slot].names.insert(sample.name) }
                if let state = entries[slot].sample.state, let other = sample.state {
                    entries[slot].sample.state = Grouper.merge(state, other)
                }
                lastSlot[sample.tid] = slot
            } else {
                slots[key] = entries.count
                lastSlot[sample.tid] = entries.count
                entries.append(Entry(sample: sample, count: 1, tids: [sample.tid], names: sample.name.isEmpty ? [] : [sample.name]))
            }
        }
    }

    var representatives: [ThreadSample] { entries.map(\.sample) }

    func records(_ symbolizer: StackSymbolizer) -> [Record] {
        entries.map { entry in
            let (locations, state) = symbolizer.stack(entry.sample)
            return Record(count: entry.count, locations: locations, truncation: entry.sample.truncation,
                          threadIDs: entry.tids.sorted(), state: state, threadNames: entry.names.sorted())
        }
    }
}

func nanosleep(nanoseconds: UInt64) {
    var request = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
    _ = Glibc.nanosleep(&request, nil)
}
