// Captures threads one at a time, stopping as few as it can. A thread blocked
// in the kernel is not stopped at all: /proc gives its sp and pc, its stack is
// copied with process_vm_readv, and the copy is kept only if /proc shows the
// thread exactly where it was and its CPU time unchanged afterwards (it did not
// run meanwhile). A thread that is running, or moved while being read, is
// stopped with ptrace for its own copy only. Not stopping matters: a ptrace
// stop makes epoll_wait, sigtimedwait and recv with a timeout return EINTR.
// Like StopTheWorld, every call must come from the one tracer thread.
import CSwiftProf
import Glibc

public enum CapturePath: String, Sendable, CaseIterable {
    /// Not touched: its CPU time had not changed since the last sample.
    case reused
    /// Copied while blocked, without a stop.
    case withoutStop = "without stop"
    /// Running: its registers and stack as the kernel's perf sampling last copied them.
    case kernelSample = "sampled by the kernel"
    /// Stopped with ptrace for the copy.
    case stopped
}

/// How the threads of one snapshot or one sampling run were captured.
public struct CaptureCounts: Sendable, Equatable {
    public var reused = 0
    public var withoutStop = 0
    public var kernelSampled = 0
    public var stopped = 0
    /// All the time threads spent stopped, and the longest single stop.
    public var stoppedNanoseconds: UInt64 = 0
    public var longestStopNanoseconds: UInt64 = 0
    /// Stack bytes copied, over all captures.
    public var copiedBytes = 0

    public init() {}

    mutating func add(_ path: CapturePath) {
        switch path {
        case .reused: reused += 1
        case .withoutStop: withoutStop += 1
        case .kernelSample: kernelSampled += 1
        case .stopped: stopped += 1
        }
    }

    /// Another capture's counts added in (the processes of one snapshot).
    public mutating func add(_ other: CaptureCounts) {
        reused += other.reused
        withoutStop += other.withoutStop
        kernelSampled += other.kernelSampled
        stopped += other.stopped
        stoppedNanoseconds += other.stoppedNanoseconds
        longestStopNanoseconds = max(longestStopNanoseconds, other.longestStopNanoseconds)
        copiedBytes += other.copiedBytes
    }

    /// "11 without stop, 1 stopped" (the paths that occurred), or "no thread".
    public var summary: String {
        let parts = [(reused, "reused"), (withoutStop, "without stop"), (kernelSampled, "sampled by the kernel"),
                     (stopped, "stopped")]
            .filter { $0.0 > 0 }.map { "\($0.0) \($0.1)" }
        return parts.isEmpty ? "no thread" : parts.joined(separator: ", ")
    }
}

final class ThreadCapturer {
    let pid: Int32
    let options: CaptureOptions
    private(set) var memoryMap: MemoryMap
    private(set) var counts = CaptureCounts()
    /// Set once any thread was seen stopped by job control (SIGSTOP, ^Z).
    private(set) var sawGroupStop = false
    /// Run on each stopped capture before the thread is let go: what must be read at
    /// the moment of the copy (a Swift job's async callers, in the heap).
    var whileStopped: ((CapturedThread) -> Void)?
    private var capturedAny = false
    let activity: ThreadActivity
    /// Seized and interrupted, but not stopped yet (state D).
    private var pending: Set<Int32> = []

    /// Detaches the pending threads that have stopped since; those still in the
    /// kernel stay seized until they stop or our exit detaches them.
    func releasePending() {
        for tid in pending {
            switch Ptrace.poll(tid) {
            case .stopped(let signal, _):
                _ = sp_ptrace_detach(tid, signal)
                pending.remove(tid)
            case .exited:
                pending.remove(tid)
            case nil:
                continue
            }
        }
    }

    init(pid: Int32, options: CaptureOptions) throws(TargetError) {
        try TargetPreflight.check(pid: pid)
        self.pid = pid
        self.options = options
        activity = ThreadActivity(pid: pid)
        do { memoryMap = try MemoryMap.read(pid: pid) } catch { throw TargetPreflight.vanished(pid: pid, error) }
    }

    func refreshMemoryMap() {
        if let fresh = try? MemoryMap.read(pid: pid) { memoryMap = fresh }
    }

    func count(_ path: CapturePath) { counts.add(path) }

    /// The thread as it sits blocked in the kernel, or nil when it must be stopped
    /// to be captured (running, not readable, or moving while read).
    /// `look`: what ThreadActivity said of the thread just now, the baseline of the
    /// first attempt. The window in which the thread must stay put is kept short:
    /// look, copy, look again; /proc's other files (state, wchan, kernel stack, the
    /// slow one) are read after it and kept only if the thread has still not moved.
    func captureWithoutStop(tid: Int32, name: String, look first: ThreadActivity.Look) -> CapturedThread? {
        // A thread the caller saw running may be blocked by now: looked at again.
        var look: ThreadActivity.Look? = first.isRunning ? activity.look(tid) : first
        for attempt in 0..<2 {
            if attempt > 0 { look = activity.look(tid) }
            guard let before = look, !before.isRunning, let at = ThreadProcInfo.parseBlockedAt(before.syscallLine) else { return nil }
            if memoryMap.region(containing: at.sp) == nil { refreshMemoryMap() }
            let (stack, note) = Ptrace.copyStack(pid: pid, sp: at.sp, map: memoryMap, limit: options.stackBytes)
            guard note == nil else { return nil }
            // Still exactly there, and not a nanosecond of CPU since: the copy is of this state.
            guard activity.look(tid) == before,
                  let info = ThreadProcInfo.read(pid: pid, tid: tid, parts: options.procParts),
                  info.syscallLine == before.syscallLine, activity.runTime(tid) == before.runTime else { continue }
            copied(stack, state: info.state)
            var registers = RegisterSet(pc: at.pc, sp: at.sp, fp: 0)
            registers.known = [RegisterSet.rip, RegisterSet.rsp]
            registers.origRAX = info.syscall.map { UInt64($0.number) } ?? UInt64.max
            return CapturedThread(tid: tid, name: name, registers: registers, stack: stack, procInfo: info,
                                  stoppedForCapture: false)
        }
        return nil
    }

    /// A thread off the CPU since `registers` were recorded at its switch out
    /// (ThreadSwitches): its stack copied now, kept if `stillOff` says after the copy
    /// that it has not been switched back in meanwhile. All its registers are known,
    /// so the walk is a stop's, without the stop.
    /// `preempted`: it left the CPU runnable, so /proc has nothing to add (state R, no system call).
    func captureSwitchedOut(tid: Int32, name: String, registers: RegisterSet, preempted: Bool,
                            stillOff: () -> Bool) -> CapturedThread? {
        if memoryMap.region(containing: registers.sp) == nil { refreshMemoryMap() }
        let (stack, note) = Ptrace.copyStack(pid: pid, sp: registers.sp, map: memoryMap, limit: options.stackBytes)
        guard note == nil, stillOff() else { return nil }
        // /proc after the copy (the copy first: the sooner, the likelier the thread is
        // still off the CPU); if it shows the thread blocked elsewhere, it moved since.
        let info = !options.readThreadState ? nil
            : preempted ? ThreadProcInfo.running() : ThreadProcInfo.read(pid: pid, tid: tid, parts: options.procParts)
        if let at = info?.blockedAt, at.sp != registers.sp || at.pc != registers.pc { return nil }
        copied(stack, state: info?.state)
        return CapturedThread(tid: tid, name: name, registers: registers, stack: stack, procInfo: info, stoppedForCapture: false)
    }

    /// A copy made without a stop: counted, and a thread found stopped by job control noted.
    private func copied(_ stack: StackCopy, state: Character?) {
        if state == "T" || state == "t" { sawGroupStop = true }
        capturedAny = true
        counts.copiedBytes += stack.bytes.count
    }

    enum StoppedOutcome {
        case captured(CapturedThread)
        case gone
        case failed(ThreadFailure)
    }

    /// Stops this one thread, copies it, lets it go. A refusal on the first thread
    /// of a process that is there means we may not trace it at all.
    /// `seenRunning`: /proc has just said the thread is running, so it is not read
    /// again before the stop: every microsecond before the interrupt is one by which
    /// the stop lands later than the tick (a short burst can be over by then).
    func captureStopped(tid: Int32, name: String, seenRunning: Bool = false) throws(TargetError) -> StoppedOutcome {
        let proc = !options.readThreadState ? nil
            : seenRunning ? ThreadProcInfo.running() : ThreadProcInfo.read(pid: pid, tid: tid, parts: options.procParts)
        let start = monotonicNanoseconds()
        var outcome: Ptrace.Stop?
        if pending.contains(tid) {
            // Interrupted before and not stopped then: take the stop if it came.
            outcome = Ptrace.poll(tid)
            guard outcome != nil else {
                return .failed(ThreadFailure(tid: tid, reason: Ptrace.didNotStop(pid: pid, tid: tid, timeout: options.stopTimeoutNanoseconds)))
            }
            pending.remove(tid)
        } else {
            switch sp_ptrace_seize(tid, 0) {
            case 0: break
            case ESRCH: return .gone
            case let rc:
                let state = (try? TaskStatus.read(pid: pid, tid: tid))?.state
                if state == nil || state == "Z" || state == "X" { return .gone }
                if !capturedAny && rc == EPERM { throw TargetPreflight.permissionError(pid: pid) }
                return .failed(ThreadFailure(tid: tid, reason: "PTRACE_SEIZE: \(errnoName(rc))"))
            }
            let interrupt = sp_ptrace_interrupt(tid)
            if interrupt == 0 || interrupt == ESRCH {
                outcome = Ptrace.wait(tid, until: start + options.stopTimeoutNanoseconds)
            }
        }
        guard case .stopped(let signal, let groupStop) = outcome else {
            if outcome == nil {
                // Not stopped in time (state D): it stays seized with the interrupt
                // pending; a later sample or releasePending detaches it once it stops.
                pending.insert(tid)
                return .failed(ThreadFailure(tid: tid, reason: Ptrace.didNotStop(pid: pid, tid: tid, timeout: options.stopTimeoutNanoseconds)))
            }
            return .gone
        }
        if groupStop { sawGroupStop = true }
        let registers = Ptrace.registers(tid)
        var stack = StackCopy(start: 0, bytes: [])
        var note: String?
        if case .success(let values) = registers {
            if memoryMap.region(containing: values.sp) == nil { refreshMemoryMap() }
            (stack, note) = Ptrace.copyStack(pid: pid, sp: values.sp, map: memoryMap, limit: options.stackBytes)
        }
        if let whileStopped, case .success(let values) = registers {
            whileStopped(CapturedThread(tid: tid, name: name, registers: values, stack: stack, stackNote: note))
        }
        _ = sp_ptrace_detach(tid, signal)
        let paused = monotonicNanoseconds() - start
        counts.stoppedNanoseconds += paused
        counts.longestStopNanoseconds = max(counts.longestStopNanoseconds, paused)
        counts.copiedBytes += stack.bytes.count
        capturedAny = true
        switch registers {
        case .success(let values):
            return .captured(CapturedThread(tid: tid, name: name, registers: values, stack: stack, stackNote: note,
                                            procInfo: proc, stoppedForCapture: true))
        case .failure(let failure):
            return .failed(failure)
        }
    }
}
