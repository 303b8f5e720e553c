// The ptrace steps both capture modes share: what a wait reports, waiting
// without blocking forever, copying a stack, and letting a thread go.
import CSwiftProf
import Glibc
import Synchronization

enum Ptrace {
    enum Stop {
        /// Stopped; `signal` is to be handed back on detach (0 for none).
        case stopped(signal: Int32, groupStop: Bool)
        case exited
    }

    /// One non-blocking wait: nil while the thread has not stopped yet.
    static func poll(_ tid: Int32) -> Stop? {
        var status: Int32 = 0
        return stop(rc: sp_wait_thread(tid, &status, 1), status: status)
    }

    /// Waits until the thread stops or exits, or until `deadline` (monotonic): nil then.
    /// Asleep until the kernel wakes us at its stop, never spinning: a thread reaches
    /// its stop only when it gets a CPU, and on a small machine the CPU it needs may be
    /// ours. Polling between short sleeps paid a context switch a poll.
    static func wait(_ tid: Int32, until deadline: UInt64) -> Stop? {
        while true {
            let now = monotonicNanoseconds()
            var status: Int32 = 0
            let rc = sp_wait_thread_until(tid, &status, deadline > now ? deadline - now : 0)
            // A wake-up before the deadline with nothing to report was a late timer signal.
            if rc == 0 && monotonicNanoseconds() < deadline { continue }
            return stop(rc: rc, status: status)
        }
    }

    private static func stop(rc: Int32, status: Int32) -> Stop? {
        if rc == 0 { return nil }
        guard rc > 0, sp_status_stopped(status) != 0 else {
            // The wait of a traced child of ours (`run`'s command) takes its exit status
            // with it: kept for the parent code that waits for it next.
            if rc > 0 { ReapedChildren.record(pid: Int32(rc), status: status) }
            return .exited
        }
        // A signal-delivery-stop (event 0) holds a signal the target must still get; a
        // group-stop reports its stop signal: the process was stopped (SIGSTOP, ^Z)
        // before us, and detaching leaves it so.
        let isSignalDelivery = sp_status_event(status) == 0
        let signal = sp_status_stop_signal(status)
        return .stopped(signal: isSignalDelivery ? signal : 0,
                        groupStop: !isSignalDelivery && [SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU].contains(signal))
    }

    /// `count` bytes of the target's memory, all or nothing (process_vm_readv: no stop needed).
    static func readMemory(pid: Int32, at address: UInt64, count: Int) -> [UInt8]? {
        readMemory(.process(pid), at: address, count: count)
    }

    /// The same from a live process or a core.
    static func readMemory(_ memory: TargetMemory, at address: UInt64, count: Int) -> [UInt8]? {
        guard address != 0, count > 0 else { return count == 0 ? [] : nil }
        var buffer = [UInt8](repeating: 0, count: count)
        let n = buffer.withUnsafeMutableBytes { memory.read(address, into: $0) }
        return n == count ? buffer : nil
    }

    /// Many ranges in few system calls (process_vm_readv takes 1024 a call instead of
    /// one), into one buffer. Ranges that lie close together (Go's g records, a few
    /// hundred bytes apart in the same spans) are read as one span and cut apart: the
    /// kernel pins a page for every range it copies, once for a span (at 100,000
    /// goroutines: 90 ms of a stop against a few).
    static func readMemory(pid: Int32, batch ranges: [(address: UInt64, count: Int)]) -> BatchedRead {
        readMemory(.process(pid), batch: ranges)
    }

    static func readMemory(_ memory: TargetMemory, batch ranges: [(address: UInt64, count: Int)]) -> BatchedRead {
        let lengths = ranges.map { max($0.count, 0) }
        var starts = [Int](repeating: 0, count: ranges.count)
        var complete = [UInt8](repeating: 0, count: ranges.count)
        guard !ranges.isEmpty else { return BatchedRead(bytes: [], starts: starts, lengths: lengths, complete: complete) }
        // Spans: ranges in address order, merged while the gap to the next is under a
        // page. Each range is then found where it lies in its span's bytes, not copied.
        let order = ranges.indices.sorted { ranges[$0].address < ranges[$1].address }
        var spans: [(address: UInt64, end: UInt64, members: ArraySlice<Int>)] = []
        var first = 0
        for position in order.indices {
            let index = order[position]
            let address = ranges[index].address, end = address &+ UInt64(lengths[index])
            if position > first, let last = spans.last, address >= last.address, address <= last.end &+ 4096,
               end >= address, end - last.address <= 1 << 20 {
                spans[spans.count - 1].end = max(last.end, end)
                spans[spans.count - 1].members = order[first...position]
            } else {
                first = position
                spans.append((address, max(end, address), order[position...position]))
            }
        }
        let spanLengths = spans.map { Int($0.end - $0.address) }
        let spanTotal = spanLengths.reduce(0, +)
        var spanComplete = [UInt8](repeating: 0, count: spans.count)
        // Filled by the kernel (or zeroed below for a span it could not read): no zeroing first.
        var bytes = [UInt8](unsafeUninitializedCapacity: spanTotal) { buffer, initialized in
            memory.read(ranges: spans.map(\.address), lengths: spanLengths, into: UnsafeMutableRawBufferPointer(buffer),
                        complete: &spanComplete)
            initialized = spanTotal
        }
        var alone: [Int] = []
        var spanStart = 0
        for (spanIndex, span) in spans.enumerated() {
            defer { spanStart += spanLengths[spanIndex] }
            guard spanComplete[spanIndex] == 1 else {
                // A page between them is not mapped: each read on its own, below.
                for at in spanStart..<spanStart + spanLengths[spanIndex] { bytes[at] = 0 }
                alone.append(contentsOf: span.members)
                continue
            }
            for index in span.members {
                starts[index] = spanStart + Int(ranges[index].address - span.address)
                complete[index] = 1
            }
        }
        for index in alone {
            starts[index] = bytes.count
            bytes.append(contentsOf: repeatElement(0, count: lengths[index]))
            let n = lengths[index] == 0 ? 0
                : bytes.withUnsafeMutableBytes { memory.read(ranges[index].address, into: UnsafeMutableRawBufferPointer(rebasing: $0[starts[index]..<starts[index] + lengths[index]])) }
            complete[index] = n == lengths[index] ? 1 : 0
        }
        return BatchedRead(bytes: bytes, starts: starts, lengths: lengths, complete: complete)
    }

    /// The same, each range's bytes apart, or nil for one not read whole.
    static func readMemory(_ memory: TargetMemory, ranges: [(address: UInt64, count: Int)]) -> [[UInt8]?] {
        let read = readMemory(memory, batch: ranges)
        return (0..<ranges.count).map { read.range($0)?.array }
    }

    /// The stack from sp to the end of its mapping, at most `limit` bytes.
    static func copyStack(pid: Int32, sp: UInt64, map: MemoryMap, limit: Int) -> (StackCopy, String?) {
        copyStack(.process(pid), sp: sp, map: map, limit: limit)
    }

    static func copyStack(_ memory: TargetMemory, sp: UInt64, map: MemoryMap, limit: Int) -> (StackCopy, String?) {
        guard let region = map.region(containing: sp) else {
            return (StackCopy(start: sp, bytes: []), "sp \(hex(sp)) is in no mapping")
        }
        let length = Int(min(region.end - sp, UInt64(limit)))
        var bytes = [UInt8](repeating: 0, count: length)
        let n = bytes.withUnsafeMutableBytes { memory.read(sp, into: $0) }
        if n < 0 {
            if case .core = memory { return (StackCopy(start: sp, bytes: []), "the stack at sp \(hex(sp)) is not in the core") }
            return (StackCopy(start: sp, bytes: []), "process_vm_readv: \(errnoName(Int32(-n)))")
        }
        if n < length { bytes.removeLast(length - n) }
        return (StackCopy(start: sp, bytes: bytes), nil)
    }

    static func didNotStop(pid: Int32, tid: Int32, timeout: UInt64) -> String {
        let state = (try? TaskStatus.read(pid: pid, tid: tid)).map { String($0.state) } ?? "?"
        return "did not stop within \(timeout / 1_000_000) ms (state \(state))"
    }

    static func registers(_ tid: Int32) -> Result<RegisterSet, ThreadFailure> {
        var raw = user_regs_struct()
        let rc = sp_ptrace_getregs(tid, &raw)
        return rc == 0 ? .success(RegisterSet(raw)) : .failure(ThreadFailure(tid: tid, reason: "PTRACE_GETREGS: \(errnoName(rc))"))
    }
}

/// Exit statuses of our own children taken by a ptrace wait (waitpid with __WALL
/// reaps a traced child's exit too): `run` asks here when its own wait finds none.
public enum ReapedChildren {
    private static let statuses = Mutex<[Int32: Int32]>([:])

    static func record(pid: Int32, status: Int32) {
        statuses.withLock { $0[pid] = status }
    }

    /// The wait status of child `pid` if a ptrace wait took it (once).
    public static func take(pid: Int32) -> Int32? {
        statuses.withLock { $0.removeValue(forKey: pid) }
    }
}

/// Ranges read in one batch: one buffer, each range at its own offset.
struct BatchedRead {
    let bytes: [UInt8]
    let starts: [Int]
    let lengths: [Int]
    let complete: [UInt8]

    /// Range `index`, without a copy; nil when it was not read whole.
    func range(_ index: Int) -> ByteView? {
        complete[index] == 1 ? ByteView(storage: bytes, base: starts[index], count: lengths[index]) : nil
    }
}

/// Part of a buffer, read field by field where it lies (a g record of Go's runtime).
struct ByteView {
    let storage: [UInt8]
    let base: Int
    let count: Int

    /// The little-endian word at `offset`, 0 outside the view.
    func word(_ offset: Int) -> UInt64 {
        guard offset >= 0, offset + 8 <= count else { return 0 }
        return storage.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: base + offset, as: UInt64.self)) }
    }

    /// The word at `offset`, nil unless the view holds all of its bytes.
    func wholeWord(_ offset: Int) -> UInt64? { offset >= 0 && offset <= count - 8 ? word(offset) : nil }

    func byte(_ offset: Int) -> UInt8 { offset >= 0 && offset < count ? storage[base + offset] : 0 }

    var array: [UInt8] { Array(storage[base..<base + count]) }
}
