// Running threads sampled by the kernel instead of stopped: a perf_event on the
// thread's own CPU clock copies its user registers and the top of its stack
// every period of CPU time it uses, from the timer interrupt, and swiftprof
// reads the copies from a ring buffer it shares with the kernel. The thread
// never stops, so a CPU-bound target loses only the interrupt's few
// microseconds instead of a ptrace stop (0.35 ms on 2 cores) per sample.
// Events are opened lazily, for threads found running, and only those; where
// perf_event_open is refused (paranoid settings, seccomp), threads are stopped.
//
// The samples are taken where the thread is, by the kernel's clock; the sampler
// only decides at each tick *whether* the thread is running, and the ticks at
// which it was are spread over these samples at the end (SampleAggregate). A
// stop at the tick instead lands late (0.1 to 1.7 ms after the tick on 2 busy
// cores, measured), by when a short burst is over: that undercounted 0.23 ms
// bursts five times.
import CSwiftProf
import Glibc

/// One perf event and its ring buffer, unmapped and closed with it.
final class PerfEvent {
    let descriptor: Int32
    let ring: UnsafeMutableRawPointer
    private let pages: Int

    /// Takes `descriptor` over (closed here if its ring cannot be mapped).
    init?(descriptor: Int32, pages: Int) {
        guard let ring = sp_perf_map(descriptor, pages) else {
            Glibc.close(descriptor)
            return nil
        }
        self.descriptor = descriptor
        self.ring = ring
        self.pages = pages
    }

    deinit {
        sp_perf_unmap(ring, pages)
        Glibc.close(descriptor)
    }

    /// The event a sp_perf_*_open call gave (a descriptor, or -errno) with its ring
    /// mapped; nil if either failed. A refusal that holds for every thread (not
    /// allowed, not built in) is kept in `refusal`: not worth asking for every thread.
    static func opened(_ result: Int32, pages: Int, refusal: inout Int32?) -> PerfEvent? {
        guard result >= 0 else {
            if isRefusal(-result) { refusal = -result }
            return nil
        }
        return PerfEvent(descriptor: result, pages: pages)
    }

    /// An errno of perf_event_open that holds for every thread (not allowed, not built in).
    static func isRefusal(_ error: Int32) -> Bool { [EACCES, EPERM, ENOSYS, ENOENT, EINVAL, EOPNOTSUPP].contains(error) }
}

final class KernelSamples {
    let periodNanoseconds: UInt64
    /// Bytes of stack the kernel copies with each sample (perf record --call-graph dwarf
    /// copies 8 KiB); a deeper stack is marked truncated.
    let stackBytes: Int
    /// Records the kernel dropped because a ring was full.
    private(set) var lost: UInt64 = 0
    /// Why perf_event_open is refused for this process, once it was.
    private(set) var refusal: Int32?
    /// nil: no event could be opened for that thread.
    private var events: [Int32: PerfEvent?] = [:]
    /// 256 KiB a thread: room for more than ten samples of 16 KiB, so that a late tick
    /// or two lose none.
    private static let ringPages = 64

    init(periodNanoseconds: UInt64, stackBytes: Int) {
        self.periodNanoseconds = periodNanoseconds
        self.stackBytes = min(16384, max(4096, stackBytes)) & ~7
    }

    /// Whether the kernel samples `tid` (an event is open for it). The first call for
    /// a thread opens its event: false then, as there is no sample yet.
    func samples(_ tid: Int32) -> Bool {
        guard refusal == nil else { return false }
        guard let known = events[tid] else {
            events[tid] = open(tid)
            return false
        }
        return known != nil
    }

    /// Every sample taken since the last call, thread by thread, oldest first.
    func drainAll(_ each: (_ tid: Int32, _ registers: RegisterSet, _ stack: StackCopy) -> Void) {
        for case let (tid, event?) in events {
            var sample = sp_perf_sample()
            while sp_perf_pending(event.ring) != 0 {
                // Copied from the ring straight into the sample's own array (through a
                // buffer, each sample's 16 KiB was a tenth of a busy run's CPU).
                var found: Int32 = 0
                let stack = [UInt8](unsafeUninitializedCapacity: stackBytes) { bytes, count in
                    found = sp_perf_drain(event.ring, &sample, bytes.baseAddress!, bytes.count, &lost)
                    count = found == 1 ? Int(sample.stack_length) : 0
                }
                guard found == 1 else { break }
                let registers = withUnsafeBytes(of: sample.registers) { Array($0.bindMemory(to: UInt64.self)) }
                let set = RegisterSet(values: registers)
                each(tid, set, StackCopy(start: set.sp, bytes: stack))
            }
        }
    }

    /// Closes the events of threads that are gone.
    func keep(only tids: Set<Int32>) {
        for tid in events.keys where !tids.contains(tid) { events[tid] = nil }
    }

    private func open(_ tid: Int32) -> PerfEvent? {
        PerfEvent.opened(sp_perf_open(tid, periodNanoseconds, UInt32(stackBytes)), pages: KernelSamples.ringPages,
                         refusal: &refusal)
    }
}
