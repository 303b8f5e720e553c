// The consistent snapshot: seize every thread, interrupt them all, copy
// registers and stack bytes, detach. Unwinding happens after, on the copies.
// All ptrace calls of one capture must come from one thread (the kernel checks
// the tracer task), so `run` is meant to be called on a dedicated thread.
import CSwiftProf
import Glibc

public struct CaptureOptions: Sendable {
    /// Bytes copied from each stack, from sp upwards.
    public var stackBytes: Int
    /// How long to wait for a thread to reach its stop (a thread in D state cannot).
    public var stopTimeoutNanoseconds: UInt64
    /// Read each thread's state, system call, wchan and kernel stack from /proc first.
    public var readThreadState: Bool
    /// What of /proc to read besides state and system call (each is a file a thread).
    public var procParts: ThreadProcInfo.Parts
    /// Threads captured at most (the lowest tids); the others are reported, not
    /// captured. With stackBytes, it bounds the memory of a capture.
    public var maxThreads = 10_000
    /// Only the threads named as these patterns say (--threads).
    public var threadNames = ThreadNameFilter()

    public init(stackBytes: Int = 512 * 1024, stopTimeoutNanoseconds: UInt64 = 250_000_000, readThreadState: Bool = true,
                procParts: ThreadProcInfo.Parts = .all) {
        self.stackBytes = stackBytes
        self.stopTimeoutNanoseconds = stopTimeoutNanoseconds
        self.readThreadState = readThreadState
        self.procParts = procParts
    }
}

struct StopTheWorld {
    let pid: Int32
    let options: CaptureOptions

    func run() throws(TargetError) -> Capture { try run { _ in () }.capture }

    /// `whileStopped` runs with every thread copied and still stopped: the place to
    /// read what must be of the same instant (a Go program's goroutine list).
    func run<Extra>(whileStopped: ([CapturedThread]) -> Extra) throws(TargetError) -> (capture: Capture, extra: Extra) {
        try TargetPreflight.check(pid: pid)
        var memoryMap: MemoryMap
        do { memoryMap = try MemoryMap.read(pid: pid) } catch { throw TargetPreflight.vanished(pid: pid, error) }

        var session = Session(pid: pid, readsProcInfo: options.readThreadState, parts: options.procParts,
                              maxThreads: options.maxThreads)
        session.threadNames = options.threadNames
        defer { session.releaseAll() }
        try session.stopAll(timeout: options.stopTimeoutNanoseconds)

        var threads: [CapturedThread] = []
        var mapRereadDone = false
        for (tid, _) in session.stopped {
            let registers: RegisterSet
            switch Ptrace.registers(tid) {
            case .success(let values): registers = values
            case .failure(let failure):
                session.failures.append(failure)
                continue
            }
            if memoryMap.region(containing: registers.sp) == nil, !mapRereadDone,
               let fresh = try? MemoryMap.read(pid: pid) {
                // A thread stack mapped after our first read of the maps.
                memoryMap = fresh
                mapRereadDone = true
            }
            let (stack, note) = Ptrace.copyStack(pid: pid, sp: registers.sp, map: memoryMap, limit: options.stackBytes)
            threads.append(CapturedThread(tid: tid, name: "", registers: registers, stack: stack, stackNote: note,
                                          procInfo: session.procInfo[tid]))
        }
        let extra = whileStopped(threads)
        session.releaseAll()
        let window = session.stopWindowNanoseconds

        // Nothing captured: the process is gone, unless --threads chose none of its threads.
        if threads.isEmpty && session.failures.isEmpty && (options.threadNames.admitsAll || Profiler.processIsGone(pid)) {
            throw .exitedDuringCapture(pid: pid)
        }
        // Names are read after the target runs again: they are not part of the stop.
        let named = threads.map {
            CapturedThread(tid: $0.tid, name: threadName(pid: pid, tid: $0.tid), registers: $0.registers,
                           stack: $0.stack, stackNote: $0.stackNote, procInfo: $0.procInfo)
        }
        return (Capture(pid: pid, threads: named.sorted { $0.tid < $1.tid },
                        failures: session.failures.sorted { $0.tid < $1.tid },
                        memoryMap: memoryMap, stopWindowNanoseconds: window, wasStopped: session.wasStopped), extra)
    }

    /// The ptrace bookkeeping of one capture; `releaseAll` is safe to call on every path.
    private struct Session {
        let pid: Int32
        /// Stopped threads and the signal to give back on detach (0 for none).
        var stopped: [(tid: Int32, signal: Int32)] = []
        /// Seized threads that have not reported a stop yet.
        var running: [Int32] = []
        var failures: [ThreadFailure] = []
        /// Threads that ended during the capture: they no longer exist, so no failure.
        var exited: [Int32] = []
        var seen: Set<Int32> = []
        var seizedCount = 0
        var wasStopped = false
        var windowStart: UInt64 = 0
        var windowEnd: UInt64 = 0
        var released = false

        /// What /proc said about each thread just before it was stopped.
        var procInfo: [Int32: ThreadProcInfo] = [:]
        let readsProcInfo: Bool
        let parts: ThreadProcInfo.Parts
        let maxThreads: Int
        var threadNames = ThreadNameFilter()

        init(pid: Int32, readsProcInfo: Bool, parts: ThreadProcInfo.Parts, maxThreads: Int) {
            self.pid = pid
            self.readsProcInfo = readsProcInfo
            self.parts = parts
            self.maxThreads = maxThreads
        }

        static func overLimit(_ limit: Int) -> String { "over the limit of \(limit) threads (--max-threads)" }

        var stopWindowNanoseconds: UInt64 { windowEnd >= windowStart ? windowEnd - windowStart : 0 }

        mutating func stopAll(timeout: UInt64) throws(TargetError) {
            while true {
                var listed = threadIDs(of: pid)
                if listed.isEmpty && seen.isEmpty { throw .noSuchProcess(pid: pid) }
                // The leader first, so a refusal is reported for the process, not a thread.
                if let leader = listed.firstIndex(of: pid) { listed.swapAt(0, leader) }
                var new = listed.filter { !seen.contains($0) }
                if !threadNames.admitsAll {
                    // Not chosen: never seized, and not asked about again.
                    for tid in new where !threadNames.admits(threadName(pid: pid, tid: tid)) { seen.insert(tid) }
                    new = new.filter { !seen.contains($0) }
                }
                let room = max(0, maxThreads - seen.count)
                if new.count > room {
                    for tid in new[room...] {
                        seen.insert(tid)
                        failures.append(ThreadFailure(tid: tid, reason: Session.overLimit(maxThreads)))
                    }
                    new = Array(new.prefix(room))
                }
                if new.isEmpty { return }
                // Seizing does not stop a thread: seize them all first, so the stop
                // window opens only at the first interrupt.
                // The kernel side of a blocked thread is read before the stop: once
                // stopped, /proc shows the ptrace stop instead of what it waited for.
                if readsProcInfo {
                    for tid in new { procInfo[tid] = ThreadProcInfo.read(pid: pid, tid: tid, parts: parts) }
                }
                var seized: [Int32] = []
                for tid in new {
                    seen.insert(tid)
                    if try seize(tid) { seized.append(tid) }
                }
                if windowStart == 0 && !seized.isEmpty { windowStart = monotonicNanoseconds() }
                for tid in seized { interrupt(tid) }
                waitForStops(timeout: timeout)
            }
        }

        /// True when the thread is now ours; false when it is gone or recorded as a failure.
        private mutating func seize(_ tid: Int32) throws(TargetError) -> Bool {
            let rc = sp_ptrace_seize(tid, 0)
            switch rc {
            case 0:
                seizedCount += 1
                return true
            case ESRCH:
                return false  // exited between the listing and the seize
            case EPERM:
                let state = (try? TaskStatus.read(pid: pid, tid: tid))?.state
                if state == nil || state == "Z" || state == "X" { return false }  // exiting: nothing to capture
                if seizedCount == 0 { throw TargetPreflight.permissionError(pid: pid) }
                failures.append(ThreadFailure(tid: tid, reason: "PTRACE_SEIZE: \(errnoName(rc))"))
                return false
            default:
                if seizedCount == 0 {
                    throw .system(SystemError(call: "ptrace(PTRACE_SEIZE)", path: "\(tid)", errno: rc))
                }
                failures.append(ThreadFailure(tid: tid, reason: "PTRACE_SEIZE: \(errnoName(rc))"))
                return false
            }
        }

        private mutating func interrupt(_ tid: Int32) {
            let rc = sp_ptrace_interrupt(tid)
            if rc == 0 || rc == ESRCH {
                running.append(tid)  // an exited tracee is reaped by the wait
            } else {
                // Seized but still running: the kernel detaches it when we exit.
                failures.append(ThreadFailure(tid: tid, reason: "PTRACE_INTERRUPT: \(errnoName(rc))"))
            }
        }

        /// Every thread was interrupted at once: waiting for each in turn takes as long
        /// as the slowest, asleep until the kernel reports each stop.
        private mutating func waitForStops(timeout: UInt64) {
            let deadline = monotonicNanoseconds() + timeout
            var stillRunning: [Int32] = []
            for tid in running {
                switch Ptrace.wait(tid, until: deadline) {
                case nil:
                    stillRunning.append(tid)
                case .exited:
                    exited.append(tid)
                case .stopped(let signal, let groupStop):
                    stopped.append((tid, signal))
                    if groupStop { wasStopped = true }
                }
            }
            running = stillRunning
            for tid in running {
                failures.append(ThreadFailure(tid: tid, reason: Ptrace.didNotStop(pid: pid, tid: tid, timeout: timeout)))
            }
        }

        /// Detaches every stopped thread, giving back any signal caught in delivery.
        mutating func releaseAll() {
            guard !released else { return }
            released = true
            for (tid, signal) in stopped { _ = sp_ptrace_detach(tid, signal) }
            windowEnd = monotonicNanoseconds()
            // Threads that never stopped: a late stop is detached here; one that stays
            // blocked keeps a pending interrupt until our exit detaches it.
            for tid in running {
                if case .stopped(let signal, _) = Ptrace.poll(tid) { _ = sp_ptrace_detach(tid, signal) }
            }
        }
    }
}

extension RegisterSet {
    init(_ raw: user_regs_struct) {
        self.init(values: [raw.rax, raw.rdx, raw.rcx, raw.rbx, raw.rsi, raw.rdi, raw.rbp, raw.rsp,
                           raw.r8, raw.r9, raw.r10, raw.r11, raw.r12, raw.r13, raw.r14, raw.r15, raw.rip].map { UInt64($0) },
                  origRAX: UInt64(raw.orig_rax))
    }
}

extension TargetPreflight {
    /// A /proc read that failed: the process went away, or we may not look at it.
    static func vanished(pid: Int32, _ error: SystemError) -> TargetError {
        switch error.errno {
        case ENOENT, ESRCH: return .noSuchProcess(pid: pid)
        case EACCES, EPERM: return permissionError(pid: pid)
        default: return .system(error)
        }
    }
}

func errnoName(_ code: Int32) -> String {
    let names: [Int32: String] = [EPERM: "EPERM", ESRCH: "ESRCH", EIO: "EIO", EFAULT: "EFAULT",
                                  EINVAL: "EINVAL", EBUSY: "EBUSY", ECHILD: "ECHILD", EACCES: "EACCES"]
    return "\(names[code] ?? "errno \(code)") (\(String(cString: strerror(code))))"
}

func monotonicNanoseconds() -> UInt64 { nanoseconds(CLOCK_MONOTONIC) }

/// The time of day, since the Unix epoch: for what profiles say of when they were taken.
public func realtimeNanoseconds() -> Int64 { Int64(nanoseconds(CLOCK_REALTIME)) }

/// CPU time of the calling thread (not the time it spent waiting).
func threadCPUNanoseconds() -> UInt64 { nanoseconds(CLOCK_THREAD_CPUTIME_ID) }

private func nanoseconds(_ clock: clockid_t) -> UInt64 {
    var now = timespec()
    clock_gettime(clock, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}
