import Glibc
// What /proc says about one thread, read without stopping it: its state, the
// system call it is blocked in (with arguments), wchan, its kernel stack, and
// when it last ran.

/// A frame of a kernel stack as /proc/PID/task/TID/stack prints it: `func+0xoff/0xsize`.
public struct KernelFrame: Hashable, Sendable {
    public var function: String
    /// Offset of the return address into the function.
    public var offset: UInt64

    public init(function: String, offset: UInt64) {
        self.function = function
        self.offset = offset
    }
}

public struct ThreadProcInfo: Equatable, Sendable {
    public var state: Character
    /// The blocking system call and its six argument registers; nil when running or not in one.
    public var syscall: (number: Int, arguments: [UInt64])?
    /// The user stack pointer and pc of a thread blocked in the kernel (in a system
    /// call or not), as /proc/PID/task/TID/syscall gives them; nil when it is running.
    public var blockedAt: (sp: UInt64, pc: UInt64)?
    /// /proc/PID/task/TID/syscall as read: the same text twice means the thread has not moved.
    public var syscallLine: String
    public var wchan: String
    /// nil when unreadable (it needs root).
    public var kernelStack: [KernelFrame]?
    /// se.exec_start: when the thread last ran, in CLOCK_MONOTONIC nanoseconds.
    public var lastRanNanoseconds: UInt64?

    public static func == (lhs: ThreadProcInfo, rhs: ThreadProcInfo) -> Bool {
        lhs.state == rhs.state && lhs.syscallLine == rhs.syscallLine && lhs.wchan == rhs.wchan
            && lhs.kernelStack == rhs.kernelStack && lhs.lastRanNanoseconds == rhs.lastRanNanoseconds
    }

    /// Everything /proc says of the thread. A thread whose syscall line says it is
    /// running gets only its state: its wchan, kernel stack and last-run time
    /// would describe a moment already gone, and reading them costs a sample.
    /// The optional files: the kernel stack (for kernel frames) and the scheduler's
    /// last-run time (for --blocked-time).
    public struct Parts: OptionSet, Sendable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }
        public static let kernelStack = Parts(rawValue: 1)
        public static let lastRun = Parts(rawValue: 2)
        public static let all: Parts = [.kernelStack, .lastRun]
    }

    /// A thread on a CPU: /proc says "running" and nothing more.
    static func running(syscallLine: String = "running") -> ThreadProcInfo {
        ThreadProcInfo(state: "R", syscall: nil, blockedAt: nil, syscallLine: syscallLine, wchan: "", kernelStack: nil,
                       lastRanNanoseconds: nil)
    }

    public static func read(pid: Int32, tid: Int32, parts: Parts = .all) -> ThreadProcInfo? {
        let base = "/proc/\(pid)/task/\(tid)"
        let syscallLine = (try? ProcFile.read(base + "/syscall")) ?? ""
        if syscallLine.hasPrefix("running") {
            return .running(syscallLine: syscallLine)
        }
        guard let status = try? TaskStatus.read(pid: pid, tid: tid) else { return nil }
        let wchan = (try? ProcFile.read(base + "/wchan")).map { $0 == "0" ? "" : $0.trimmedWhitespace } ?? ""
        return ThreadProcInfo(
            state: status.state,
            syscall: parseSyscall(syscallLine),
            blockedAt: parseBlockedAt(syscallLine),
            syscallLine: syscallLine,
            wchan: wchan,
            kernelStack: parts.contains(.kernelStack) ? (try? ProcFile.readBytes(base + "/stack")).map { parseKernelStack($0[...]) } : nil,
            lastRanNanoseconds: parts.contains(.lastRun) ? lastRan(base) : nil)
    }

    /// When the thread last ran, on CLOCK_MONOTONIC: its exec_start, on the clock of
    /// the CPU it last ran on (stat's 39th field), converted (SchedulerClock).
    private static func lastRan(_ base: String) -> UInt64? {
        guard let started = (try? ProcFile.read(base + "/sched")).flatMap(parseExecStart),
              let stat = try? ProcFile.read(base + "/stat"), let cpu = parseLastCPU(stat) else { return nil }
        return SchedulerClock.monotonic(started, cpu: cpu)
    }

    /// The CPU a thread last ran on: /proc/.../stat's 39th field, the 37th after the
    /// name's closing parenthesis (the name may hold spaces and parentheses).
    static func parseLastCPU(_ stat: String) -> Int? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 36 ? Int(fields[36]) : nil
    }

    /// The last two fields, sp and pc, of a blocked thread's syscall line.
    static func parseBlockedAt(_ text: String) -> (sp: UInt64, pc: UInt64)? {
        let fields = ProcText.words(text)
        guard fields.count >= 3, !fields[0].elementsEqual("running".utf8), let sp = ProcText.hex(fields[fields.count - 2]),
              let pc = ProcText.hex(fields[fields.count - 1]), sp != 0, pc != 0 else { return nil }
        return (sp, pc)
    }

    /// "nr a1 a2 a3 a4 a5 a6 sp pc", "running", or "-1 sp pc" (blocked outside a system call).
    static func parseSyscall(_ text: String) -> (number: Int, arguments: [UInt64])? {
        let fields = ProcText.words(text)
        guard fields.count >= 7, let number = ProcText.signed(fields[0]), number >= 0 else { return nil }
        let arguments = fields[1...6].compactMap(ProcText.hex)
        return arguments.count == 6 ? (number, arguments) : nil
    }

    /// Lines "[<0>] do_epoll_wait+0x548/0x5a0", innermost first.
    static func parseKernelStack(_ text: String) -> [KernelFrame] {
        parseKernelStack(ArraySlice(text.utf8))
    }

    static func parseKernelStack(_ bytes: ArraySlice<UInt8>) -> [KernelFrame] {
        ProcText.lines(bytes).compactMap { line in
            guard let space = line.firstIndex(of: UInt8(ascii: " ")) else { return nil }
            let symbol = line[(space + 1)...]
            guard let plus = symbol.lastIndex(of: UInt8(ascii: "+")) else {
                return KernelFrame(function: ProcText.string(symbol), offset: 0)
            }
            let offsetText = symbol[(plus + 1)...].prefix { $0 != UInt8(ascii: "/") }
            return KernelFrame(function: ProcText.string(symbol[..<plus]), offset: ProcText.hex(offsetText) ?? 0)
        }
    }

    /// "se.exec_start   :   1046169.940284" (milliseconds).
    static func parseExecStart(_ text: String) -> UInt64? {
        for line in text.split(separator: "\n") where line.hasPrefix("se.exec_start") {
            guard let colon = line.firstIndex(of: ":") else { return nil }
            let value = line[line.index(after: colon)...].trimmedWhitespace
            let parts = value.split(separator: ".")
            guard let millis = UInt64(parts[0]) else { return nil }
            // Milliseconds with six decimals (the kernel's SPLIT_NS): the fraction counts nanoseconds.
            let fraction = parts.count > 1 ? String(parts[1].prefix(6)) : ""
            let nanos = UInt64(fraction.padding(toLength: 6)) ?? 0
            return millis * 1_000_000 + nanos
        }
        return nil
    }
}

private extension String {
    func padding(toLength length: Int) -> String {
        count >= length ? String(prefix(length)) : self + String(repeating: "0", count: length - count)
    }
}

/// Whether a thread can have run since it was last looked at, from two files kept
/// open and re-read with pread: /proc/PID/task/TID/syscall ("running" while the
/// thread is runnable or on a CPU, else where it is blocked) and the first field of
/// schedstat, its cumulative CPU time.
///
/// The CPU time alone does not say it: the kernel adds to it at a scheduler tick or
/// when the thread is switched out, so a thread that woke since the last tick and is
/// computing right now still shows the old sum. Read in this order, the two do: if
/// the thread is not running when its syscall file is read, any run it had since the
/// last look ended before that read, was added to the sum when it was switched out,
/// and shows in the sum read next.
final class ThreadActivity {
    private let pid: Int32
    private var descriptors: [Int32: (syscall: Int32, schedstat: Int32)] = [:]
    private var buffer = [UInt8](repeating: 0, count: 256)

    init(pid: Int32) { self.pid = pid }

    deinit { for pair in descriptors.values { close(pair.syscall); close(pair.schedstat) } }

    /// The syscall line, then schedstat read after it.
    struct Look: Equatable {
        var syscallLine: String
        /// Cumulative time on a CPU (se.sum_exec_runtime).
        var runTime: UInt64
        /// How many times the thread was switched onto a CPU (sched_info.pcount):
        /// counted when it gets the CPU, so a thread woken but still waiting for one
        /// shows the count it had.
        var timeslices: UInt64

        var isRunning: Bool { syscallLine.hasPrefix("running") }

        /// Runnable now, but not switched onto a CPU since `earlier` found it blocked:
        /// it has not run an instruction since, so its stack is the one of then.
        func isWaitingSinceBlocked(_ earlier: Look) -> Bool {
            isRunning && !earlier.isRunning && runTime == earlier.runTime && timeslices == earlier.timeslices
        }
    }

    /// The thread now; nil once it is gone.
    func look(_ tid: Int32) -> Look? {
        // The line decoded before the buffer is read into again.
        guard let files = files(tid), let line = readBytes(files.syscall).map({ String(decoding: $0, as: UTF8.self) }),
              let sum = readBytes(files.schedstat) else {
            forget(tid)
            return nil
        }
        // "run_time wait_time timeslices"
        let fields = ProcText.words(sum)
        return Look(syscallLine: line, runTime: ProcText.leadingDecimal(sum),
                    timeslices: fields.count > 2 ? ProcText.leadingDecimal(fields[2]) : 0)
    }

    /// The CPU time alone: unchanged across a copy means the thread did not run during it.
    func runTime(_ tid: Int32) -> UInt64? {
        guard let files = files(tid), let sum = readBytes(files.schedstat) else { return nil }
        return ProcText.leadingDecimal(sum)
    }

    /// Closes the files of threads that are gone.
    func keep(only tids: Set<Int32>) {
        for tid in descriptors.keys where !tids.contains(tid) { forget(tid) }
    }

    private func files(_ tid: Int32) -> (syscall: Int32, schedstat: Int32)? {
        if let open = descriptors[tid] { return open }
        let base = "/proc/\(pid)/task/\(tid)/"
        let syscall = Glibc.open(base + "syscall", O_RDONLY | O_CLOEXEC)
        guard syscall >= 0 else { return nil }
        let schedstat = Glibc.open(base + "schedstat", O_RDONLY | O_CLOEXEC)
        guard schedstat >= 0 else {
            close(syscall)
            return nil
        }
        descriptors[tid] = (syscall, schedstat)
        return (syscall, schedstat)
    }

    /// As read, newline and all (the syscall line compares with ThreadProcInfo.read's).
    private func readBytes(_ fd: Int32) -> ArraySlice<UInt8>? {
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        return n > 0 ? buffer[0..<n] : nil
    }

    private func forget(_ tid: Int32) {
        if let pair = descriptors.removeValue(forKey: tid) {
            close(pair.syscall)
            close(pair.schedstat)
        }
    }
}
