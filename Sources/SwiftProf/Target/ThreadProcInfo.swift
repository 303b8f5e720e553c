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

    public static func read(pid: Int32, tid: Int32) -> ThreadProcInfo? {
        let base = "/proc/\(pid)/task/\(tid)"
        guard let status = try? TaskStatus.read(pid: pid, tid: tid) else { return nil }
        let wchan = (try? ProcFile.read(base + "/wchan")).map { $0 == "0" ? "" : $0.trimmedWhitespace } ?? ""
        let syscallLine = (try? ProcFile.read(base + "/syscall")) ?? ""
        return ThreadProcInfo(
            state: status.state,
            syscall: parseSyscall(syscallLine),
            blockedAt: parseBlockedAt(syscallLine),
            syscallLine: syscallLine,
            wchan: wchan,
            kernelStack: (try? ProcFile.read(base + "/stack")).map(parseKernelStack),
            lastRanNanoseconds: (try? ProcFile.read(base + "/sched")).flatMap(parseExecStart))
    }

    /// The last two fields, sp and pc, of a blocked thread's syscall line.
    static func parseBlockedAt(_ text: String) -> (sp: UInt64, pc: UInt64)? {
        let fields = text.split(separator: " ").map { $0.trimmedWhitespace }
        guard fields.count >= 3, fields[0] != "running", let sp = hexValue(fields[fields.count - 2]),
              let pc = hexValue(fields[fields.count - 1]), sp != 0, pc != 0 else { return nil }
        return (sp, pc)
    }

    private static func hexValue(_ text: String) -> UInt64? {
        text.hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : nil
    }

    /// "nr a1 a2 a3 a4 a5 a6 sp pc", "running", or "-1 sp pc" (blocked outside a system call).
    static func parseSyscall(_ text: String) -> (number: Int, arguments: [UInt64])? {
        let fields = text.split(separator: " ")
        guard fields.count >= 7, let number = Int(fields[0]), number >= 0 else { return nil }
        let arguments = fields[1...6].compactMap { $0.hasPrefix("0x") ? UInt64($0.dropFirst(2), radix: 16) : nil }
        return arguments.count == 6 ? (number, arguments) : nil
    }

    /// Lines "[<0>] do_epoll_wait+0x548/0x5a0", innermost first.
    static func parseKernelStack(_ text: String) -> [KernelFrame] {
        text.split(separator: "\n").compactMap { line in
            guard let space = line.firstIndex(of: " ") else { return nil }
            let symbol = line[line.index(after: space)...]
            guard let plus = symbol.lastIndex(of: "+") else { return KernelFrame(function: String(symbol), offset: 0) }
            let offsetText = symbol[symbol.index(after: plus)...].prefix { $0 != "/" }
            let offset = offsetText.hasPrefix("0x") ? UInt64(offsetText.dropFirst(2), radix: 16) ?? 0 : 0
            return KernelFrame(function: String(symbol[..<plus]), offset: offset)
        }
    }

    /// "se.exec_start   :   1046169.940284" (milliseconds).
    static func parseExecStart(_ text: String) -> UInt64? {
        for line in text.split(separator: "\n") where line.hasPrefix("se.exec_start") {
            guard let colon = line.firstIndex(of: ":") else { return nil }
            let value = line[line.index(after: colon)...].trimmedWhitespace
            let parts = value.split(separator: ".")
            guard let millis = UInt64(parts[0]) else { return nil }
            let fraction = parts.count > 1 ? String(parts[1].prefix(6)) : ""
            let micros = UInt64(fraction.padding(toLength: 6)) ?? 0
            return millis * 1_000_000 + micros * 1000
        }
        return nil
    }
}

private extension String {
    func padding(toLength length: Int) -> String {
        count >= length ? String(prefix(length)) : self + String(repeating: "0", count: length - count)
    }
}

/// Cumulative time on the CPU (the first field of /proc/PID/task/TID/schedstat):
/// unchanged between two reads means the thread has not run in between.
public func threadRunTime(pid: Int32, tid: Int32) -> UInt64? {
    guard let text = try? ProcFile.read("/proc/\(pid)/task/\(tid)/schedstat") else { return nil }
    return text.split(separator: " ").first.flatMap { UInt64($0) }
}
