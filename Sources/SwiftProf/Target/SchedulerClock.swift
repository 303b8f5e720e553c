// A thread's se.exec_start (/proc/PID/task/TID/sched: when it last ran) is on its
// CPU's run-queue clock, which is neither CLOCK_MONOTONIC nor the same on every CPU:
// on this kind of virtual machine they are a minute from CLOCK_MONOTONIC and 2.4 s
// from each other. Each CPU's distance from CLOCK_MONOTONIC is measured on that CPU
// (the shim moves the calling thread there and reads its own exec_start while it
// runs: the clock's now to within a scheduler tick), and a thread's exec_start is
// converted with the distance of the CPU it last ran on. Measured again at most
// once a second (the clocks drift apart).
import CSwiftProf
import Glibc
import Synchronization

enum SchedulerClock {
    /// `scheduler` (an exec_start of a thread that last ran on `cpu`) on CLOCK_MONOTONIC.
    static func monotonic(_ scheduler: UInt64, cpu: Int) -> UInt64? {
        let all = offsets()
        guard all.indices.contains(cpu), let offset = all[cpu] else { return nil }
        return UInt64(bitPattern: Int64(bitPattern: scheduler) &- offset)
    }

    /// Per CPU, how far its scheduler clock is ahead of CLOCK_MONOTONIC (nil: not measured).
    static func offsets() -> [Int64?] {
        let now = monotonicNanoseconds()
        if let known = cache.withLock({ $0 }), now &- known.at < 1_000_000_000 { return known.offsets }
        let count = onlineCPUs
        var raw = [Int64](repeating: .min, count: count)
        guard sp_scheduler_clock_offsets(&raw, Int32(count)) > 0 else { return [] }
        let offsets = raw.map { $0 == .min ? nil : $0 }
        cache.withLock { $0 = (now, offsets) }
        return offsets
    }

    /// The CPUs online (libdispatch sizes its global queue by them too).
    static var onlineCPUs: Int { max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))) }

    private static let cache = Mutex<(at: UInt64, offsets: [Int64?])?>(nil)
}
