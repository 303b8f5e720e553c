// The library's entry points. A snapshot: capture, unwind, symbolize, hand back
// plain values. A sampling run: the same, many times, with symbolizing done
// once at the end. Captures run on the tracer thread; the rest does not touch
// the target.

public struct SnapshotOptions: Sendable {
    public var capture = CaptureOptions()
    public var unwind = UnwindOptions()
    public var symbolize = SymbolizeOptions()
    /// Put each blocked thread's kernel frames below its user frames.
    public var kernelFrames = true
    /// Give kernel frames their addresses from /proc/kallsyms (35 ms of kernel time
    /// to read): only formats that print addresses need them.
    public var kernelAddresses = true
    /// Stop every thread at once (one instant for all stacks) instead of capturing
    /// them one by one with as few stops as possible.
    public var consistent = false
    /// Given when several processes are read in one run: the files they map are
    /// opened, and their addresses symbolized, once for all of them.
    public var sharedModules: SharedModules?

    public init() {}
}

/// Where the time of one snapshot went; printed by `--stats`, never in the profile.
public struct SnapshotStatistics: Sendable {
    public var threads = 0
    /// --consistent: from the first interrupt to the last detach. Otherwise the
    /// longest stop of a single thread.
    public var stopWindowNanoseconds: UInt64 = 0
    public var captureNanoseconds: UInt64 = 0
    public var unwindNanoseconds: UInt64 = 0
    public var symbolizeNanoseconds: UInt64 = 0
    public var stackBytes = 0
    public var paths = CaptureCounts()
    /// Why kernel frames are missing or have no addresses, when they are.
    public var kernelNote: String?
}

public enum Profiler {
    public static func snapshot(pid: Int32, options: SnapshotOptions = SnapshotOptions())
        throws(TargetError) -> (Snapshot, SnapshotStatistics) {
        var attempt = 0
        while true {
            do {
                return options.consistent ? try consistentSnapshot(pid: pid, options: options)
                    : try perThreadSnapshot(pid: pid, options: options)
            } catch .exitedDuringCapture where attempt < 3 && !processIsGone(pid) {
                // Every thread vanished, yet the process is there: it was in execve, which
                // ends all its threads but one and renames that one. Look again.
                attempt += 1
            } catch .permissionDenied(_, TargetPreflight.unexplainedRefusal) where attempt < 3 && !processIsGone(pid) {
                // Refused for no reason we can name: a process in execve is not dumpable for
                // a moment (seen: 2 dumps in 100 landing in a re-exec). Once that is over, it is.
                attempt += 1
                nanosleep(nanoseconds: 2_000_000)
            }
        }
    }

    /// Every thread stopped at once: the stacks are of one instant.
    private static func consistentSnapshot(pid: Int32, options: SnapshotOptions) throws(TargetError) -> (Snapshot, SnapshotStatistics) {
        var statistics = SnapshotStatistics()
        let started = monotonicNanoseconds()
        let warmUp = SymbolizerWarmUp(pid: pid, options: options.symbolize)
        let captureOptions = options.capture
        // A Swift program's threads are unwound while stopped: their jobs' async
        // callers are in the heap, of this instant only while no thread runs.
        let (capture, stoppedWalks) = try TracerThread.run { () throws(TargetError) -> (Capture, StoppedWalks?) in
            try StopTheWorld(pid: pid, options: captureOptions).run { threads -> StoppedWalks? in
                guard let map = try? MemoryMap.read(pid: pid), case let image = TargetImage(pid: pid, memoryMap: map),
                      image.hasSwiftConcurrency else { return nil }
                return StoppedWalks(image: image, samples: unwound(threads, image: image, options: options, now: monotonicNanoseconds()))
            }
        }
        statistics.captureNanoseconds = monotonicNanoseconds() - started
        statistics.stopWindowNanoseconds = capture.stopWindowNanoseconds
        statistics.threads = capture.threads.count
        statistics.stackBytes = capture.threads.reduce(0) { $0 + $1.stack.bytes.count }
        statistics.paths.stopped = capture.threads.count

        let clock = monotonicNanoseconds()
        let image = stoppedWalks?.image ?? TargetImage(pid: pid, memoryMap: capture.memoryMap)
        let samples = stoppedWalks?.samples ?? unwound(capture.threads, image: image, options: options, now: clock)
        statistics.unwindNanoseconds = monotonicNanoseconds() - clock
        return (symbolize(pid: pid, samples: samples, image: image, failures: capture.failures,
                          wasStopped: capture.wasStopped, options: options, warmUp: warmUp, statistics: &statistics), statistics)
    }

    /// Thread by thread, blocked threads without a stop.
    private static func perThreadSnapshot(pid: Int32, options: SnapshotOptions) throws(TargetError) -> (Snapshot, SnapshotStatistics) {
        var statistics = SnapshotStatistics()
        let started = monotonicNanoseconds()
        // Of several processes, each is symbolized from what the others found first.
        let warmUp = options.sharedModules == nil ? SymbolizerWarmUp(pid: pid, options: options.symbolize) : nil
        let (samples, image, failures, counts, wasStopped) = try TracerThread.run {
            () throws(TargetError) -> ([ThreadSample], TargetImage, [ThreadFailure], CaptureCounts, Bool) in
            let sampler = try Sampler(pid: pid, options: options)
            sampler.reusesIdleThreads = false
            let samples = try sampler.snapshot()
            sampler.releasePending()
            // Nothing captured: the process is gone, unless --threads chose none of its threads.
            guard !samples.isEmpty || !sampler.failures.isEmpty
                || (!options.capture.threadNames.admitsAll && !processIsGone(pid)) else {
                throw TargetError.exitedDuringCapture(pid: pid)
            }
            return (samples, sampler.targetImage, sampler.failures.values.sorted { $0.tid < $1.tid }, sampler.counts,
                    sampler.sawGroupStop)
        }
        statistics.captureNanoseconds = monotonicNanoseconds() - started
        statistics.threads = samples.count
        statistics.paths = counts
        statistics.stackBytes = counts.copiedBytes
        statistics.stopWindowNanoseconds = counts.longestStopNanoseconds
        return (symbolize(pid: pid, samples: samples, image: image, failures: failures, wasStopped: wasStopped,
                          options: options, warmUp: warmUp, statistics: &statistics), statistics)
    }

    /// Threads stopped (or read from a core), each unwound over its copy.
    static func unwound(_ threads: [CapturedThread], image: TargetImage, options: SnapshotOptions, now: UInt64) -> [ThreadSample] {
        let unwinder = LibunwindUnwinder(image: image)
        return threads.map { thread in
            ThreadSample(thread, unwound: unwinder?.unwind(thread, options: options.unwind)
                            ?? UnwoundStack(pcs: [thread.registers.pc], truncation: "libunwind is unavailable"),
                         path: .stopped, now: now, image: image, maxFrames: options.unwind.maxFrames)
        }
    }

    /// Threads copied with or without a stop, each unwound over its copy; a copy
    /// without a stop whose walk needed rbp gets it recovered from the stack, as the
    /// sampler does (FramePointerRecovery).
    static func unwoundRecovering(_ threads: [CapturedThread], image: TargetImage, options: SnapshotOptions) -> [ThreadSample] {
        guard let unwinder = LibunwindUnwinder(image: image) else { return unwound(threads, image: image, options: options, now: 0) }
        return threads.map { thread in
            var walk = unwinder.unwind(thread, options: options.unwind)
            if !walk.isAsGoodAsAStop,
               let recovered = FramePointerRecovery(unwinder: unwinder, image: image).recover(thread, partial: walk, options: options.unwind) {
                walk = recovered
            }
            return ThreadSample(thread, unwound: walk, path: .withoutStop, now: 0, image: image, maxFrames: options.unwind.maxFrames)
        }
    }

    private static func symbolize(pid: Int32, samples: [ThreadSample], image: TargetImage, failures: [ThreadFailure],
                                  wasStopped: Bool, options: SnapshotOptions, warmUp: SymbolizerWarmUp?,
                                  statistics: inout SnapshotStatistics) -> Snapshot {
        let clock = monotonicNanoseconds()
        let symbolizer = StackSymbolizer(pid: pid, image: image, samples: samples, options: options, warmUp: warmUp)
        let threads = samples.sorted { $0.tid < $1.tid }.map(symbolizer.threadStack)
        statistics.kernelNote = symbolizer.kernelNote
        statistics.symbolizeNanoseconds = monotonicNanoseconds() - clock
        return Snapshot(pid: pid, threads: threads, failures: failures,
                        memoryMapLines: image.memoryMap.documentLines(pid: pid), wasStopped: wasStopped)
    }
}

/// Threads unwound while the process was stopped, with the image they were read by;
/// handed from the tracer thread, which made them, to its caller, waiting meanwhile.
private struct StoppedWalks: @unchecked Sendable {
    let image: TargetImage
    let samples: [ThreadSample]
}
