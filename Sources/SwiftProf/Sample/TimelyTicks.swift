// Where the kernel records no context switches (--no-perf, or perf refused), a
// thread's state is what /proc says when the sampler gets to look, so the look
// must happen at the tick. A sampler woken at normal priority on the CPU where a
// target thread computes is not run until that thread blocks (the scheduler does
// not preempt it for a waking thread), so it looks exactly when a burst ends and
// finds the burst over: measured, bursts of 0.23 ms every 1 ms sampled 0.03 of the
// time for a truth of 0.23, and 0.26 once the sampler's wake-up preempts (the
// lowest SCHED_FIFO priority). With switch records the state is the one at the
// tick's scheduled instant whenever the sampler looks, so this is not needed, unless
// running threads are stopped for their stacks instead of sampled by the kernel (a
// Swift program's, whose async callers only a stop reads): the stop must then come
// at the tick too.
//
// A real-time thread also takes the CPU from the target for all of its work: if
// the ticks' CPU time grows past a quarter of the time on average (thousands of
// threads, a slow machine), the sampler goes back to normal priority for the rest
// of the run and says so. CPU time, not wall time: waiting for a thread to stop
// on the sampler's own CPU takes nothing from it.
import CSwiftProf

public enum TickPriority: String, Sendable {
    /// Normal priority: switch records place threads, or real time was not wanted.
    case normal
    /// Woken at real-time priority, so each look is at its tick.
    case realtime
    /// Real time refused (no CAP_SYS_NICE, RLIMIT_RTPRIO 0): looks may come late.
    case refused
    /// Back to normal priority: the ticks' work took too much of the CPU.
    case dropped
}

struct TimelyTicks {
    private(set) var priority: TickPriority
    private var workNanoseconds: UInt64 = 0
    private var spanNanoseconds: UInt64 = 0

    /// Real-time wake-ups for the calling thread when `wanted`.
    init(wanted: Bool) {
        priority = !wanted ? .normal : sp_set_thread_realtime(1) == 0 ? .realtime : .refused
    }

    /// A tick's CPU time and the period it belongs to; leaves real time when the
    /// work of the last second or so took more than a quarter of the time.
    mutating func account(workNanoseconds work: UInt64, periodNanoseconds period: UInt64) {
        guard priority == .realtime else { return }
        workNanoseconds += work
        spanNanoseconds += period
        guard spanNanoseconds >= 1_000_000_000 else { return }
        if workNanoseconds * 4 > spanNanoseconds {
            _ = sp_set_thread_realtime(0)
            priority = .dropped
        }
        workNanoseconds = 0
        spanNanoseconds = 0
    }

    /// Back to normal priority when the run ends (the thread may be reused).
    mutating func end() {
        if priority == .realtime { _ = sp_set_thread_realtime(0) }
    }
}
