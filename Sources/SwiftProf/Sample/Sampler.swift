// Samples every thread of a process, one thread at a time, stopping as few as
// it can (see ThreadCapturer), and skipping threads that have not run since
// the last sample: their stack cannot have changed, so the last one is
// counted again without touching them. Cost then grows with the number of
// active threads, not of all threads. Runs on the tracer thread.

final class Sampler {
    let pid: Int32
    let options: SnapshotOptions
    private let capturer: ThreadCapturer
    private var image: TargetImage
    private var unwinder: LibunwindUnwinder?
    private var mapGeneration: [MemoryRegion]
    /// The last sample of each thread and its CPU time then, for idle elision.
    private var previous: [Int32: (runTime: UInt64, sample: ThreadSample)] = [:]
    private var names: [Int32: String] = [:]
    /// Each thread's registers at its last ptrace stop.
    private var stoppedAt: [Int32: RegisterSet] = [:]
    private(set) var failures: [Int32: ThreadFailure] = [:]
    /// Reuse an idle thread's last sample (off for a one-off snapshot: nothing to reuse).
    var reusesIdleThreads = true
    /// For a sampling run: running threads are read from the kernel's perf samples
    /// instead of stopped (nil: always stopped).
    var kernelSamples: KernelSamples?

    init(pid: Int32, options: SnapshotOptions) throws(TargetError) {
        self.pid = pid
        self.options = options
        capturer = try ThreadCapturer(pid: pid, options: options.capture)
        image = TargetImage(pid: pid, memoryMap: capturer.memoryMap)
        unwinder = LibunwindUnwinder(image: image)
        mapGeneration = capturer.memoryMap.regions
    }

    var counts: CaptureCounts { capturer.counts }
    var sawGroupStop: Bool { capturer.sawGroupStop }
    var targetImage: TargetImage { image }

    /// One pass over the threads listed now. Empty when the process is gone.
    func sampleOnce() throws(TargetError) -> [ThreadSample] {
        let tids = threadIDs(of: pid)
        var samples: [ThreadSample] = []
        let limit = options.capture.maxThreads
        for tid in tids.prefix(limit) {
            if let sample = try sample(tid) { samples.append(sample) }
        }
        for tid in tids.dropFirst(limit) {
            failures[tid] = ThreadFailure(tid: tid, reason: "over the limit of \(limit) threads (--max-threads)")
        }
        let alive = Set(tids)
        previous = previous.filter { alive.contains($0.key) }
        stoppedAt = stoppedAt.filter { alive.contains($0.key) }
        capturer.runTimes.keep(only: alive)
        kernelSamples?.keep(only: alive)
        return samples
    }

    private func sample(_ tid: Int32) throws(TargetError) -> ThreadSample? {
        let runTime = capturer.runTimes.runTime(tid)
        if reusesIdleThreads, let runTime, let last = previous[tid], last.runTime == runTime {
            capturer.count(.reused)
            var reused = last.sample
            reused.path = .reused
            return reused
        }
        let name = names[tid] ?? threadName(pid: pid, tid: tid)
        names[tid] = name
        let now = monotonicNanoseconds()
        var partial: ThreadSample?
        if let copy = capturer.captureWithoutStop(tid: tid, name: name, runTime: runTime) {
            let unwound = unwind(copy)
            let sample = ThreadSample(copy, unwound: unwound, path: .withoutStop, now: now)
            // sp and pc are all /proc gives: a walk that needed another register
            // (a frame pointer) stops early. Never keep a worse stack than a stop gives.
            if unwound.isAsGoodAsAStop {
                capturer.count(.withoutStop)
                return remember(sample, runTime: runTime)
            }
            if let recovered = framePointerWalk(copy, partial: unwound) {
                capturer.count(.withoutStop)
                return remember(ThreadSample(copy, unwound: recovered, path: .withoutStop, now: now), runTime: runTime)
            }
            partial = sample
        } else if let sample = kernelSample(tid: tid, name: name, now: now) {
            return remember(sample, runTime: runTime)
        }
        switch try capturer.captureStopped(tid: tid, name: name) {
        case .captured(let thread):
            capturer.count(.stopped)
            failures[tid] = nil
            stoppedAt[tid] = thread.registers
            return remember(ThreadSample(thread, unwound: unwind(thread), path: .stopped, now: now), runTime: runTime)
        case .gone:
            return nil
        case .failed(let failure):
            // A thread that cannot stop (state D) keeps the stack /proc allowed, marked truncated.
            if let partial {
                capturer.count(.withoutStop)
                return partial
            }
            failures[tid] = failure
            return nil
        }
    }

    func releasePending() { capturer.releasePending() }

    /// The walk of a copy taken without a stop that needed rbp, with rbp found:
    /// the one read at this thread's last stop if it is blocked exactly where it
    /// was then (same pc and sp: rbp is callee-saved, and waiting in the kernel
    /// does not touch it), or one recovered from the stack (FramePointerRecovery).
    /// A thread that needs a stop once is then not stopped again while it waits,
    /// so it stays idle and its samples are reused.
    private func framePointerWalk(_ copy: CapturedThread, partial: UnwoundStack) -> UnwoundStack? {
        guard let unwinder else { return nil }
        if let known = stoppedAt[copy.tid], known.pc == copy.registers.pc, known.sp == copy.registers.sp {
            let walk = unwinder.unwind(copy, framePointer: known.fp, options: options.unwind)
            if walk.truncation == nil { return walk }
        }
        return FramePointerRecovery(unwinder: unwinder, image: image).recover(copy, partial: partial, options: options.unwind)
    }

    /// A running thread as the kernel sampled it within the last few periods, if its
    /// walk is complete (a stack deeper than the kernel's copy gets a stop instead).
    private func kernelSample(tid: Int32, name: String, now: UInt64) -> ThreadSample? {
        guard let kernelSamples,
              let (registers, stack) = kernelSamples.newest(tid: tid, notBefore: now &- 3 * kernelSamples.periodNanoseconds)
        else { return nil }
        let thread = CapturedThread(tid: tid, name: name, registers: registers, stack: stack, procInfo: .running(),
                                    stoppedForCapture: false)
        let unwound = unwind(thread)
        guard unwound.isAsGoodAsAStop else { return nil }
        capturer.count(.kernelSample)
        return ThreadSample(thread, unwound: unwound, path: .kernelSample, now: now)
    }

    private func remember(_ sample: ThreadSample, runTime: UInt64?) -> ThreadSample {
        if let runTime { previous[sample.tid] = (runTime, sample) }
        return sample
    }

    private func unwind(_ thread: CapturedThread) -> UnwoundStack {
        if capturer.memoryMap.regions != mapGeneration {
            // The target mapped or unmapped something: start over with fresh images.
            mapGeneration = capturer.memoryMap.regions
            image = TargetImage(pid: pid, memoryMap: capturer.memoryMap)
            unwinder = LibunwindUnwinder(image: image)
        }
        return unwinder?.unwind(thread, options: options.unwind)
            ?? UnwoundStack(pcs: [thread.registers.pc], truncation: "libunwind is unavailable")
    }
}
