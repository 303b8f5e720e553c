// Samples every thread of a process, one thread at a time, stopping as few as
// it can (see ThreadCapturer), and skipping threads that provably have not run
// since the last sample (ThreadSwitches where perf allows, else ThreadActivity):
// their stack cannot have changed, so the last one is counted again without being
// copied. Runs on the tracer thread.

final class Sampler {
    let pid: Int32
    let options: SnapshotOptions
    private let capturer: ThreadCapturer
    private var image: TargetImage
    private var unwinder: LibunwindUnwinder?
    private var mapGeneration: [MemoryRegion]
    /// For idle elision, what was known of each thread at its last capture: what
    /// /proc said then (its syscall line and CPU time), and its switch epoch if it was
    /// captured off a CPU while its switches were recorded. A reuse counts the
    /// thread's last sample again (SampleAggregate keeps where it went).
    private var previousLook: [Int32: ThreadActivity.Look] = [:]
    private var previousEpoch: [Int32: ThreadSwitches.Epoch] = [:]
    /// Each thread's registers at its last ptrace stop.
    private var stoppedAt: [Int32: RegisterSet] = [:]
    private(set) var failures: [Int32: ThreadFailure] = [:]
    /// Reuse an idle thread's last sample (off for a one-off snapshot: nothing to reuse).
    var reusesIdleThreads = true
    /// For a sampling run: running threads are read from the kernel's perf samples
    /// instead of stopped (nil: always stopped).
    var kernelSamples: KernelSamples?
    /// For a Go program: each sample's goroutine's labels.
    private var goLabels: GoSampleLabels?
    /// For a sampling run: every thread's context switches, where perf allows.
    var switches: ThreadSwitches?
    /// CPU-time sampling: only threads that are runnable or on a CPU (state R) at
    /// the tick are sampled; the others are not even copied.
    var onlyRunning = false
    /// --threads: whether each thread is chosen, and when these were decided.
    private var choices: [Int32: Bool] = [:]
    private var choicesMade: UInt64 = 0
    /// The chosen threads of the last list, and the rename records counted then.
    private var chosenAmong: [Int32] = []
    private var chosen: [Int32] = []
    private var chosenAtRenames = 0
    /// The threads of the last tick, and when /proc last listed them.
    private var knownThreads: [Int32] = []
    /// The list the per-thread state was last pruned to.
    private var lastPruned: [Int32] = []
    private var lastListing: UInt64 = 0
    /// Threads whose last sample stands for as long as their switch records stay
    /// empty: captured or reused off a CPU as of a tick with nothing recorded after
    /// it. At 1,000 threads, most are here at most ticks: each costs a set lookup.
    private var quiet: Set<Int32> = []
    /// Per thread, stacks copied while it was off a CPU, by where it was (pc and sp).
    private var offCPUAt: [Int32: [OffCPUPlace: ThreadSample]] = [:]
    /// Each thread's name when last read, for the kernel's samples of it.
    private var lastNames: [Int32: String] = [:]
    /// Thread captures that failed (a thread that would not stop, say), over all ticks.
    private(set) var unreadable = 0

    init(pid: Int32, options: SnapshotOptions) throws(TargetError) {
        self.pid = pid
        self.options = options
        capturer = try ThreadCapturer(pid: pid, options: options.capture)
        image = TargetImage(pid: pid, memoryMap: capturer.memoryMap, shared: options.sharedModules)
        unwinder = LibunwindUnwinder(image: image)
        mapGeneration = capturer.memoryMap.regions
        if image.hasSwiftConcurrency {
            // A Swift job's async callers are in the heap, and change as soon as the
            // thread runs on: read before the thread is let go.
            capturer.whileStopped = { [unowned self] copy in
                stoppedChains[copy.tid] = AsyncChains(unwind(copy), stack: copy.stack, image: image, limit: options.unwind.maxFrames)
            }
        }
    }

    /// How a run samples: the kernel's records of switches and, but for a Swift
    /// program, one of its samples per period of CPU time (as many as a thread always
    /// on a CPU has running ticks to place over them; each is unwound, the largest part
    /// of a tick's cost for busy threads). A Swift program's jobs' async callers are in
    /// the heap, read exactly only while the thread is stopped (a kernel sample is read
    /// a tick later, when a task may have gone on to another caller).
    /// `switchRings`: the rings shared by every process of a run; nil: its own.
    func configure(_ options: SamplingOptions, period: UInt64, switchRings: SwitchRings? = nil) {
        if options.kernelSampling {
            if !image.hasSwiftConcurrency {
                kernelSamples = KernelSamples(periodNanoseconds: period, stackBytes: options.snapshot.capture.stackBytes)
            }
            switches = ThreadSwitches(pid: pid, rings: switchRings)
        }
        goLabels = GoSampleLabels(image: image)
        onlyRunning = options.mode == .cpu
    }

    /// The async callers read while each thread was stopped, until its sample takes them.
    private var stoppedChains: [Int32: AsyncChains] = [:]

    var counts: CaptureCounts { capturer.counts }
    /// What the sampler counted so far, into `progress`: ways of capture, failed
    /// captures, and the perf records the kernel dropped (summed over every thread's
    /// rings: asked for when progress is shown, not at every tick).
    func account(_ progress: inout SamplingProgress) {
        progress.paths = capturer.counts
        progress.unreadable = unreadable
        progress.lostKernelRecords = (kernelSamples?.lost ?? 0) + (switches?.lost ?? 0)
        progress.rememberedWalks = rememberedWalks + (unwinder?.memoHits ?? 0)
    }
    /// Walks answered by the memos of unwinders replaced since (maps changed).
    private var rememberedWalks = 0
    var sawGroupStop: Bool { capturer.sawGroupStop }
    var targetImage: TargetImage { image }

    /// What one pass over the threads found.
    struct Tick {
        /// The threads captured at this tick.
        var samples: [ThreadSample] = []
        /// The threads whose last sample is counted again.
        var reused: [Int32] = []
        /// Threads running at this tick whose stacks the kernel samples: where they
        /// were is drawn from those samples (SampleAggregate).
        var running: [(tid: Int32, name: String)] = []
        /// The kernel's samples of running threads since the last tick, unwound.
        var kernelSamples: [ThreadSample] = []

        /// The threads this tick looked at: every thread of the process (those --threads
        /// chooses, up to --max-threads), sampled or not (in CPU mode, blocked ones are not).
        var watched = 0

        var isEmpty: Bool { samples.isEmpty && reused.isEmpty && running.isEmpty }

        /// Each thread's place at this tick, where it has a new one: its capture, else,
        /// for a thread running at the tick, the kernel's latest sample of it (a thread
        /// that ran, then blocked before the tick, has kernel samples of its running
        /// too: its capture is where it is). Reused threads are where they were.
        var places: [ThreadSample] {
            let captured = Set(samples.map(\.tid))
            let onCPU = Set(running.map(\.tid))
            var latest: [Int32: ThreadSample] = [:]
            for sample in kernelSamples where onCPU.contains(sample.tid) && !captured.contains(sample.tid) { latest[sample.tid] = sample }
            return samples + latest.keys.sorted().map { latest[$0]! }
        }
    }

    /// One pass over the threads listed now, for the moment `due` (CLOCK_MONOTONIC):
    /// where the switch records say where a thread was then, that is where it is
    /// counted. Empty when the process is gone.
    func sampleOnce(due: UInt64 = monotonicNanoseconds()) throws(TargetError) -> Tick {
        // First: the later the rings are read, the more threads have moved since the tick.
        if let changed = switches?.drainAll(tick: due), !changed.isEmpty { quiet.subtract(changed) }
        let listed = threadList()
        var tick = Tick()
        kernelSamples?.drainAll { tid, registers, stack in
            tick.kernelSamples.append(kernelSample(tid: tid, registers: registers, stack: stack))
        }
        let limit = options.capture.maxThreads
        var tids = listed
        if !options.capture.threadNames.admitsAll {
            // The others' switches are recorded too, though never read: their records
            // list the threads they start, which spares listing /proc at every tick,
            // and say when they are renamed. Tracked before a name is read, so that
            // a rename after the read is recorded.
            if let switches, switches.refusal == nil, listed == chosenAmong, switches.renames == chosenAtRenames {
                // No thread started, ended or was renamed since: the same choice, with
                // no lookup for each of a thousand threads at every tick.
                tids = chosen
            } else {
                if let switches { for tid in listed { _ = switches.track(tid) } }
                tids = listed.filter(isChosen)
                (chosenAmong, chosen, chosenAtRenames) = (listed, tids, switches?.renames ?? 0)
            }
        }
        tick.watched = min(tids.count, limit)
        for tid in tids.prefix(limit) {
            if quiet.contains(tid) {
                // Nothing recorded since a sample that stands: the same again, without a look.
                if let outcome = reuse(), case .reused = outcome { tick.reused.append(tid) }
                continue
            }
            switch try sample(tid) {
            case .captured(let sample): tick.samples.append(sample)
            case .reused: tick.reused.append(tid)
            case .running(let name): tick.running.append((tid, name))
            case nil: break
            }
        }
        for tid in tids.dropFirst(limit) {
            failures[tid] = ThreadFailure(tid: tid, reason: "over the limit of \(limit) threads (--max-threads)")
        }
        // Per-thread state of threads that are gone, dropped when the list changes.
        if listed != lastPruned {
            lastPruned = listed
            let alive = Set(listed)
            previousLook = previousLook.filter { alive.contains($0.key) }
            previousEpoch = previousEpoch.filter { alive.contains($0.key) }
            stoppedAt = stoppedAt.filter { alive.contains($0.key) }
            lastNames = lastNames.filter { alive.contains($0.key) }
            choices = choices.filter { alive.contains($0.key) }
            offCPUAt = offCPUAt.filter { alive.contains($0.key) }
            quiet.formIntersection(alive)
            capturer.activity.keep(only: alive)
            kernelSamples?.keep(only: alive)
            switches?.keep(only: alive)
        }
        goLabels?.label(&tick)
        return tick
    }

    /// The threads now: from the switch records (the threads known, the ones they
    /// started, less the ones that ended) where they can say, which costs nothing;
    /// else, and at least once a second, from /proc (a directory read that costs
    /// about 0.5 ms at 1,000 threads, a tick's budget at 100 Hz spent listing).
    /// The records can say once every known thread was tracked before the last
    /// listing: a thread started between a listing and its parent's first event
    /// shows in neither, so a tick that opened events is followed by a listing.
    private func threadList() -> [Int32] {
        let now = monotonicNanoseconds()
        if let switches, !switches.openedSinceListing, now - lastListing < 1_000_000_000,
           let tids = switches.threads(following: knownThreads) {
            knownThreads = tids
            return tids
        }
        switches?.forgetStarted()
        switches?.openedSinceListing = false
        knownThreads = threadIDs(of: pid)
        lastListing = now
        return knownThreads
    }

    /// Whether --threads chose the thread, by its name. With switch records a name
    /// is read again only after a record says the thread was renamed; without
    /// them, the unchosen threads' names are read again once a second (reading
    /// every name at every tick would cost what --threads saves; once a second
    /// at 1,000 threads still cost 10 ms a second and a lost tick each time).
    private func isChosen(_ tid: Int32) -> Bool {
        if let switches, switches.refusal == nil {
            if let known = choices[tid], !switches.mayBeRenamed(tid) { return known }
        } else {
            let now = monotonicNanoseconds()
            if now - choicesMade > 1_000_000_000 {
                choices = [:]
                choicesMade = now
            }
            if let known = choices[tid] { return known }
        }
        // Kept for the capture that follows, which then need not read it again.
        let name = threadName(pid: pid, tid: tid)
        lastNames[tid] = name
        let chosen = options.capture.threadNames.admits(name)
        choices[tid] = chosen
        return chosen
    }

    /// For a one-off snapshot: every thread captured once.
    func snapshot() throws(TargetError) -> [ThreadSample] { try sampleOnce().samples }

    private enum Outcome {
        case captured(ThreadSample)
        /// Its last sample, counted again.
        case reused
        /// On a CPU, and sampled by the kernel: placed later.
        case running(name: String)
    }

    /// What the switch records settle for a thread, or that /proc must be asked.
    private enum Decision {
        case settled(Outcome?)
        case askProc
    }

    private func sample(_ tid: Int32) throws(TargetError) -> Outcome? {
        // Tracked before the thread is first looked at: every switch after the look is recorded.
        var epoch: ThreadSwitches.Epoch?
        if let switches, switches.track(tid), let status = switches.status(tid) {
            if case .settled(let outcome) = sampleFromSwitches(tid, status, switches) { return outcome }
            // The look below is later than the drain: any switch in after it shows as a new epoch.
            epoch = status.atDrain.epoch
        }
        guard let look = capturer.activity.look(tid) else { return nil }
        // Not run since its last capture: blocked just as it was, or woken but not yet
        // switched onto a CPU. Its stack is the one of then, and it is not on a CPU.
        if reusesIdleThreads, let lastLook = previousLook[tid],
           (!look.isRunning && look == lastLook) || look.isWaitingSinceBlocked(lastLook) {
            return reuse()
        }
        if onlyRunning && !look.isRunning { return nil }
        if look.isRunning, kernelSamples?.samples(tid) != true {
            // No kernel samples of it: stopped at once, its name read once it is.
            let now = monotonicNanoseconds()
            switch try capturer.captureStopped(tid: tid, name: "", seenRunning: true) {
            case .captured(let thread):
                return .captured(stopped(thread.renamed(currentName(tid)), look: look, now: now))
            case .gone:
                return nil
            case .failed(let failure):
                failures[tid] = failure
                unreadable += 1
                return nil
            }
        }
        let name = currentName(tid)
        let now = monotonicNanoseconds()
        if look.isRunning, countedAsRunning(tid) { return .running(name: name) }
        // A thread seen running may be blocked again by now: copied without a stop
        // then, as a stop would make its epoll_wait or recv return EINTR.
        var partial: ThreadSample?
        if let copy = capturer.captureWithoutStop(tid: tid, name: name, look: look) {
            let unwound = unwind(copy)
            let sample = threadSample(copy, unwound, .withoutStop, now: now)
            // sp and pc are all /proc gives: a walk that needed another register
            // (a frame pointer) stops early. Never keep a worse stack than a stop gives.
            if unwound.isAsGoodAsAStop {
                capturer.count(.withoutStop)
                return .captured(keepOffCPU(remember(sample, look: look, epoch: epoch), at: look))
            }
            if let recovered = framePointerWalk(copy, partial: unwound) {
                capturer.count(.withoutStop)
                return .captured(keepOffCPU(remember(threadSample(copy, recovered, .withoutStop, now: now),
                                                     look: look, epoch: epoch), at: look))
            }
            partial = sample
        } else if capturer.activity.look(tid)?.isRunning == true, countedAsRunning(tid) {
            // It woke while being copied: running now, which the kernel's samples place
            // without the late landing of a stop.
            return .running(name: name)
        } else if let earlier = OffCPUPlace(look).flatMap({ offCPUAt[tid]?[$0] }) {
            // Blocked at the look, and woken while being copied: at the tick it was
            // where an earlier copy found it. A stop now would land in what it does
            // after waking (measured: bursts of 0.23 ms every 1 ms counted 0.05 too
            // often when the copy was slow), so that copy stands for it.
            capturer.count(.reused)
            return .captured(remember(earlier, look: nil, epoch: nil))
        }
        switch try capturer.captureStopped(tid: tid, name: name) {
        case .captured(let thread):
            return .captured(stopped(thread, look: look, now: now))
        case .gone:
            return nil
        case .failed(let failure):
            // A thread that cannot stop (state D) keeps the stack /proc allowed, marked truncated.
            if let partial {
                capturer.count(.withoutStop)
                return .captured(remember(partial, look: nil, epoch: nil))
            }
            failures[tid] = failure
            unreadable += 1
            return nil
        }
    }

    private func stopped(_ thread: CapturedThread, look: ThreadActivity.Look, now: UInt64) -> ThreadSample {
        capturer.count(.stopped)
        failures[thread.tid] = nil
        stoppedAt[thread.tid] = thread.registers
        return remember(threadSample(thread, unwind(thread), .stopped, now: now), look: look, epoch: nil)
    }

    /// A thread whose switches are recorded, placed where it was at the tick: reused
    /// if it had not been switched onto a CPU since a capture made while it was off
    /// one; counted as running if it was on one; else where its last switch out
    /// before the tick left it (blocked, woken and waiting for a CPU, or preempted:
    /// it had not run since). That stack is copied now if the thread has not run
    /// since the tick either; if it has, it is a stack captured earlier at exactly
    /// those registers (a loop that blocks at the same place each time), if any.
    private func sampleFromSwitches(_ tid: Int32, _ status: (atTick: ThreadSwitches.Status, atDrain: ThreadSwitches.Status),
                                    _ switches: ThreadSwitches) -> Decision {
        let atTick = status.atTick
        if status.atDrain.exited { return .settled(nil) }
        // The state at the tick is the one at the drain (nothing recorded after the
        // tick): a sample of it stands until the next record.
        let settledAtTick = status.atDrain.epoch == atTick.epoch && status.atDrain.onCPU == atTick.onCPU
        if reusesIdleThreads, let epoch = previousEpoch[tid], epoch == atTick.epoch {
            if settledAtTick { quiet.insert(tid) }
            return .settled(reuse())
        }
        switch atTick.onCPU {
        case true?:
            let name = currentName(tid)
            return countedAsRunning(tid) ? .settled(.running(name: name)) : .askProc
        case false?:
            if onlyRunning { return .settled(nil) }
            guard let registers = atTick.lastOut else { return .askProc }
            let key = OffCPUPlace(registers)
            let name = currentName(tid)
            let now = monotonicNanoseconds()
            guard status.atDrain.epoch == atTick.epoch,
                  let copy = capturer.captureSwitchedOut(tid: tid, name: name, registers: registers, preempted: atTick.wasPreempted,
                                                         stillOff: { switches.drain(tid)?.epoch == atTick.epoch })
            else {
                // It ran since the tick: the stack it had then is gone, unless one was
                // copied before at the same place.
                guard let earlier = offCPUAt[tid]?[key] else { return .askProc }
                // Counted by its stack, as it need not be the thread's last sample; not
                // known to stay valid, so it has no epoch.
                capturer.count(.reused)
                return .settled(.captured(offCPU(remember(earlier, look: nil, epoch: nil))))
            }
            capturer.count(.withoutStop)
            let sample = remember(threadSample(copy, unwind(copy), .withoutStop, now: now), look: nil,
                                  epoch: atTick.epoch)
            if settledAtTick && reusesIdleThreads { quiet.insert(tid) }
            return .settled(.captured(offCPU(keepOffCPU(sample, at: key))))
        case nil:
            return .askProc
        }
    }

    /// A thread off a CPU at the tick: runnable (state R: preempted, or woken and not
    /// yet run again) means waiting for a CPU.
    private func offCPU(_ sample: ThreadSample) -> ThreadSample {
        var sample = sample
        sample.waitingForCPU = sample.state?.code == "R"
        return sample
    }

    /// Kept for a later tick that finds the thread at the same place but cannot copy it.
    private func keepOffCPU(_ sample: ThreadSample, at place: OffCPUPlace?) -> ThreadSample {
        guard let place else { return sample }
        if offCPUAt[sample.tid, default: [:]].count >= 32 { offCPUAt[sample.tid] = [:] }
        offCPUAt[sample.tid, default: [:]][place] = sample
        return sample
    }

    private func keepOffCPU(_ sample: ThreadSample, at look: ThreadActivity.Look) -> ThreadSample {
        keepOffCPU(sample, at: OffCPUPlace(look))
    }

    /// The last sample again; nothing in CPU mode, as the thread is not on a CPU.
    private func reuse() -> Outcome? {
        if onlyRunning { return nil }
        capturer.count(.reused)
        return .reused
    }

    /// A thread renames itself (prctl) or its process execs: read again at every
    /// capture, unless the switch records say it has not been renamed since.
    private func currentName(_ tid: Int32) -> String {
        if let known = lastNames[tid], let switches, !switches.mayBeRenamed(tid) { return known }
        let name = threadName(pid: pid, tid: tid)
        lastNames[tid] = name
        return name
    }

    /// Whether a running thread is counted as running at this tick, to be placed
    /// over the kernel's samples of it: only if the kernel samples it.
    private func countedAsRunning(_ tid: Int32) -> Bool {
        guard let kernelSamples, kernelSamples.samples(tid) else { return false }
        capturer.count(.kernelSample)
        return true
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

    /// One of the kernel's samples of a running thread, unwound (marked truncated
    /// where the stack is deeper than the kernel's copy of it).
    private func kernelSample(tid: Int32, registers: RegisterSet, stack: StackCopy) -> ThreadSample {
        let thread = CapturedThread(tid: tid, name: lastNames[tid] ?? "", registers: registers, stack: stack,
                                    procInfo: .running(), stoppedForCapture: false)
        var sample = threadSample(thread, unwind(thread), .kernelSample, now: 0)
        if let goLabels { sample.goLabels = goLabels.labels(registers) }
        return sample
    }

    /// Kept for idle elision with what /proc said just before the capture (a later
    /// look that finds the thread blocked with the same line and CPU time means it
    /// has not run since) and with its switch epoch when it was off a CPU (the same
    /// epoch later means the same). A stop makes the thread run (it handles the
    /// interrupt), so the look after a stop never matches and it has no epoch: the
    /// next sample copies it without stop.
    private func remember(_ sample: ThreadSample, look: ThreadActivity.Look?, epoch: ThreadSwitches.Epoch?) -> ThreadSample {
        previousLook[sample.tid] = look
        previousEpoch[sample.tid] = epoch
        return sample
    }

    /// A capture as a sample, with the async callers of a Swift job read now.
    private func threadSample(_ thread: CapturedThread, _ unwound: UnwoundStack, _ path: CapturePath, now: UInt64) -> ThreadSample {
        let chains = path == .stopped ? stoppedChains.removeValue(forKey: thread.tid) : nil
        return ThreadSample(thread, unwound: unwound, path: path, now: now, image: chains == nil ? image : nil,
                            maxFrames: options.unwind.maxFrames, asyncChains: chains)
    }

    private func unwind(_ thread: CapturedThread) -> UnwoundStack {
        if capturer.memoryMap.regions != mapGeneration {
            // The target mapped or unmapped something: start over with fresh images.
            mapGeneration = capturer.memoryMap.regions
            rememberedWalks += unwinder?.memoHits ?? 0
            image = TargetImage(pid: pid, memoryMap: capturer.memoryMap, shared: options.sharedModules)
            unwinder = LibunwindUnwinder(image: image)
        }
        return unwinder?.unwind(thread, options: options.unwind)
            ?? UnwoundStack(pcs: [thread.registers.pc], truncation: "libunwind is unavailable")
    }
}

/// Where a thread was off a CPU: pc and sp, from its switch out or from /proc's
/// system call line. Two stops at the same pc and sp are, in practice, the same
/// point of the same calls (a worker's loop blocking in the same place each time):
/// the return addresses above sp are the same words. The other registers are not
/// compared: at -O2 they hold the loop's variables.
struct OffCPUPlace: Hashable {
    let pc: UInt64
    let sp: UInt64

    init(_ registers: RegisterSet) {
        pc = registers.pc
        sp = registers.sp
    }

    /// Where a look found the thread blocked; nil when it was running.
    init?(_ look: ThreadActivity.Look) {
        guard !look.isRunning, let at = ThreadProcInfo.parseBlockedAt(look.syscallLine) else { return nil }
        pc = at.pc
        sp = at.sp
    }
}
