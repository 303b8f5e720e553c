// Which threads have run since they were last captured, and where the others
// left the CPU, from the kernel's own record of every context switch.
//
// A perf event per thread (a software event sampled at every switch out, with
// context-switch records) puts into a small ring, for each switch, the user
// registers the thread left the CPU with and the moment it came back. Reading
// that ring is a memory read, so a sampling tick costs nothing for a thread that
// has not run since its last capture, however many such threads there are (the
// /proc files it replaces cost two reads a thread a tick). And a thread off the
// CPU is exactly where its last switch out left it: one woken but still waiting
// for a CPU, or preempted, has not executed an instruction since. Those are the
// moments the state in /proc cannot place: it says "running" for them, and
// counting them as running credited a thread's wake-up latency to the code it
// runs once on the CPU (0.31 instead of 0.23 for 0.23 ms bursts every 1 ms).
import CSwiftProf
import Glibc

final class ThreadSwitches {
    /// What the kernel recorded of one thread, up to a drain. Read for every thread
    /// at every tick: it points at the thread's record instead of copying it, and is
    /// to be used before the next drain of all threads.
    struct Status {
        fileprivate let state: UnsafePointer<sp_switch_state>

        /// nil until a switch is recorded.
        var onCPU: Bool? { state.pointee.on_cpu < 0 ? nil : state.pointee.on_cpu == 1 }
        /// Switched out while runnable (preempted), not to wait for something.
        var wasPreempted: Bool { state.pointee.preempted != 0 }
        /// The thread has ended (a zombie leader stays listed in /proc).
        var exited: Bool { state.pointee.exited != 0 }
        var epoch: Epoch { Epoch(switchIns: state.pointee.switch_ins, lost: state.pointee.lost) }

        /// The user registers of the last switch out, if there was one with user registers.
        var lastOut: RegisterSet? {
            guard state.pointee.has_registers != 0 else { return nil }
            return RegisterSet(values: withUnsafeBytes(of: state.pointee.registers) { Array($0.bindMemory(to: UInt64.self)) })
        }
    }

    /// Switches in and records lost so far: the same epoch at two drains means the
    /// thread was not switched onto a CPU in between (nothing was dropped that
    /// could have said so).
    struct Epoch: Equatable {
        var switchIns: UInt64
        var lost: UInt64
    }

    /// A thread's event and its two records, kept at fixed addresses for the C drain.
    private final class Thread {
        let event: PerfEvent
        let state = UnsafeMutablePointer<sp_switch_state>.allocate(capacity: 1)
        /// The state as of the last drain's cutoff (the tick).
        let atTick = UnsafeMutablePointer<sp_switch_state>.allocate(capacity: 1)

        init(event: PerfEvent, pid: Int32, tid: Int32) {
            self.event = event
            state.initialize(to: sp_switch_state())
            state.pointee.on_cpu = -1
            state.pointee.tid = tid
            state.pointee.pid = pid
            atTick.initialize(to: state.pointee)
        }

        deinit {
            state.deallocate()
            atTick.deallocate()
        }

        /// Whether the state at the cutoff may differ from the one of the last drain.
        func drain(cutoff: UInt64) -> Bool {
            sp_switch_drain(event.ring, state, cutoff, atTick) != 0
        }

        /// Up to now, leaving the state at the tick as it was.
        func drainNow() {
            var ignored = sp_switch_state()
            _ = sp_switch_drain(event.ring, state, .max, &ignored)
        }
    }

    let pid: Int32
    /// nil: no event could be opened for that thread.
    private var threads: [Int32: Thread?] = [:]
    /// How many of `threads` are nil.
    private var untracked = 0
    /// An event was opened since the caller last listed the threads (and cleared this).
    var openedSinceListing = false

    init(pid: Int32) { self.pid = pid }
    /// Why perf_event_open is refused for this process, once it was.
    private(set) var refusal: Int32?
    /// Records dropped over the threads (a ring filled between two ticks).
    var lost: UInt64 { threads.values.reduce(0) { $0 + ($1?.state.pointee.lost ?? 0) } }
    /// 32 KiB a thread: about 150 switches between two drains.
    private static let ringPages = 8

    /// Whether the kernel records `tid`'s switches, opening its event the first time.
    /// What happened before the event was opened is not recorded: the caller learns
    /// the thread's state once by other means (ThreadActivity) after this call.
    func track(_ tid: Int32) -> Bool {
        guard refusal == nil else { return false }
        if let known = threads[tid] { return known != nil }
        let thread = PerfEvent.opened(sp_switch_open(tid), pages: Self.ringPages, refusal: &refusal)
            .map { Thread(event: $0, pid: pid, tid: tid) }
        threads[tid] = .some(thread)
        if thread == nil { untracked += 1 } else { openedSinceListing = true }
        return thread != nil
    }

    /// Reads every ring, keeping each thread's state as of `tick` (CLOCK_MONOTONIC);
    /// the threads whose state at the tick may have changed since the last call (the
    /// others recorded nothing at all: usually all but the busy ones).
    func drainAll(tick: UInt64) -> Set<Int32> {
        var changed: Set<Int32> = []
        for case let (tid, thread?) in threads where thread.drain(cutoff: tick) { changed.insert(tid) }
        return changed
    }

    /// The threads `known` and those they started since the last call, without
    /// those that ended, in order; nil when the records cannot say (a thread not
    /// tracked, whose new threads would go unseen, or more new ones than recorded).
    func threads(following known: [Int32]) -> [Int32]? {
        // The known threads are the tracked ones (the sampler tracks every thread it
        // lists, and drops the others): the rings are walked, nothing is looked up.
        guard untracked == 0, threads.count == known.count else { return nil }
        var started: [Int32] = []
        var ended: [Int32] = []
        for case let (tid, thread?) in threads {
            let state = thread.state
            guard state.pointee.forked_overflow == 0 else { return nil }
            if state.pointee.exited != 0 { ended.append(tid) }
            let count = Int(state.pointee.forked_count)
            if count > 0 {
                started += withUnsafeBytes(of: state.pointee.forked) { Array($0.bindMemory(to: Int32.self).prefix(count)) }
                state.pointee.forked_count = 0
            }
        }
        guard !started.isEmpty || !ended.isEmpty else { return known }
        return Set(known + started).subtracting(ended).sorted()
    }

    /// Forgets new threads recorded so far (a listing of /proc has just found them).
    func forgetStarted() {
        for case let thread? in threads.values {
            thread.state.pointee.forked_count = 0
            thread.state.pointee.forked_overflow = 0
        }
    }

    /// Reads one thread's ring and says where it is now; nil when not tracked.
    func drain(_ tid: Int32) -> Status? {
        guard case let thread?? = threads[tid] else { return nil }
        thread.drainNow()
        return Status(state: thread.state)
    }

    /// Where the thread was at the last drain's tick, and where it was at the drain
    /// (later, and maybe switched in since); nil when not tracked.
    func status(_ tid: Int32) -> (atTick: Status, atDrain: Status)? {
        guard case let thread?? = threads[tid] else { return nil }
        return (Status(state: thread.atTick), Status(state: thread.state))
    }

    /// Closes the events of threads that are gone.
    func keep(only tids: Set<Int32>) {
        for tid in threads.keys where !tids.contains(tid) {
            if case .some(nil) = threads[tid] { untracked -= 1 }
            threads[tid] = nil
        }
    }
}
