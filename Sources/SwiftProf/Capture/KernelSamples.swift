// Running threads sampled by the kernel instead of stopped: a perf_event on the
// thread's own CPU clock copies its user registers and the top of its stack
// every period of CPU time it uses, from the timer interrupt, and swiftprof
// reads the newest copy from a ring buffer it shares with the kernel. The
// thread never stops, so a CPU-bound target loses only the interrupt's few
// microseconds instead of a ptrace stop (0.35 ms on 2 cores) per sample.
// Events are opened lazily, for threads found running, and only those; where
// perf_event_open is refused (paranoid settings, seccomp), threads are stopped.
import CSwiftProf
import Glibc

final class KernelSamples {
    private final class Event {
        let descriptor: Int32
        let ring: UnsafeMutableRawPointer
        var newest: (time: UInt64, registers: RegisterSet, stack: StackCopy)?

        init(descriptor: Int32, ring: UnsafeMutableRawPointer) {
            self.descriptor = descriptor
            self.ring = ring
        }
    }

    let periodNanoseconds: UInt64
    /// Bytes of stack the kernel copies with each sample (perf record --call-graph dwarf
    /// copies 8 KiB); a deeper stack than that is stopped for instead.
    let stackBytes: Int
    /// Records the kernel dropped because the ring was full.
    private(set) var lost: UInt64 = 0
    /// Why perf_event_open is refused for this process, once it was.
    private(set) var refusal: Int32?
    /// nil: no event could be opened for that thread.
    private var events: [Int32: Event?] = [:]
    private var buffer: [UInt8]
    private static let ringPages = 16

    init(periodNanoseconds: UInt64, stackBytes: Int) {
        self.periodNanoseconds = periodNanoseconds
        self.stackBytes = min(16384, max(4096, stackBytes)) & ~7
        buffer = [UInt8](repeating: 0, count: self.stackBytes)
    }

    deinit { for case let event? in events.values { close(event) } }

    /// The newest sample of `tid` taken at `notBefore` or later (CLOCK_MONOTONIC).
    /// The first call for a thread opens its event: there is no sample yet then.
    func newest(tid: Int32, notBefore: UInt64) -> (registers: RegisterSet, stack: StackCopy)? {
        guard refusal == nil else { return nil }
        guard let known = events[tid] else {
            events[tid] = open(tid)
            return nil
        }
        guard let event = known else { return nil }
        var sample = sp_perf_sample()
        let found = buffer.withUnsafeMutableBytes { stack in
            sp_perf_drain(event.ring, &sample, stack.baseAddress!.assumingMemoryBound(to: UInt8.self), stack.count, &lost)
        }
        if found == 1 {
            let registers = withUnsafeBytes(of: sample.registers) { Array($0.bindMemory(to: UInt64.self)) }
            let set = RegisterSet(values: registers)
            event.newest = (sample.time, set, StackCopy(start: set.sp, bytes: Array(buffer.prefix(Int(sample.stack_length)))))
        }
        guard let newest = event.newest, newest.time >= notBefore else { return nil }
        return (newest.registers, newest.stack)
    }

    /// Closes the events of threads that are gone.
    func keep(only tids: Set<Int32>) {
        for tid in events.keys where !tids.contains(tid) {
            if case let event?? = events[tid] { close(event) }
            events[tid] = nil
        }
    }

    private func open(_ tid: Int32) -> Event? {
        let descriptor = sp_perf_open(tid, periodNanoseconds, UInt32(stackBytes))
        guard descriptor >= 0 else {
            // Refused outright (not allowed, not built in): not worth asking for every thread.
            if [EACCES, EPERM, ENOSYS, ENOENT, EINVAL, EOPNOTSUPP].contains(-descriptor) { refusal = -descriptor }
            return nil
        }
        guard let ring = sp_perf_map(descriptor, KernelSamples.ringPages) else {
            Glibc.close(descriptor)
            return nil
        }
        return Event(descriptor: descriptor, ring: ring)
    }

    private func close(_ event: Event) {
        sp_perf_unmap(event.ring, KernelSamples.ringPages)
        Glibc.close(event.descriptor)
    }
}
