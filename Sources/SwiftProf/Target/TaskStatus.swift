import Glibc

// What /proc says about a process or one of its threads, read without stopping it.

public struct TaskStatus: Equatable, Sendable {
    /// One of R S D T t Z X I ...
    public let state: Character
    public let name: String
    public let flags: UInt64
    public let wchanAddress: UInt64

    /// PF_KTHREAD in include/linux/sched.h.
    public var isKernelThread: Bool { flags & 0x0020_0000 != 0 }
    public var isZombie: Bool { state == "Z" || state == "X" }

    public static func read(pid: Int32, tid: Int32? = nil) throws(SystemError) -> TaskStatus {
        let base = tid.map { "/proc/\(pid)/task/\($0)" } ?? "/proc/\(pid)"
        let text = try ProcFile.read(base + "/stat")
        guard let status = TaskStatus(parsingStat: text) else {
            throw SystemError(call: "parse", path: base + "/stat", errno: EINVAL)
        }
        return status
    }

    /// Parses `pid (comm) state ppid ...`; comm may contain spaces and parentheses.
    public init?(parsingStat text: String) {
        guard let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")") else { return nil }
        name = String(text[text.index(after: open)..<close])
        let rest = text[text.index(after: close)...].split(separator: " ")
        // rest[0] is field 3 (state); flags is field 9, wchan field 35.
        guard rest.count > 6, let state = rest[0].first, let flags = UInt64(rest[6]) else { return nil }
        self.state = state
        self.flags = flags
        self.wchanAddress = rest.count > 32 ? UInt64(rest[32]) ?? 0 : 0
    }
}

/// The tracer of a process (`TracerPid` in /proc/PID/status), 0 when none.
public func tracerPID(of pid: Int32) -> Int32 {
    guard let text = try? ProcFile.read("/proc/\(pid)/status") else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix("TracerPid:") {
        return Int32(line.dropFirst("TracerPid:".count).trimmedWhitespace) ?? 0
    }
    return 0
}

/// The tids of a process, sorted; empty when it is gone.
public func threadIDs(of pid: Int32) -> [Int32] {
    (try? ProcFile.numericEntries("/proc/\(pid)/task")) ?? []
}

/// A thread's name (`comm`), or "" once it is gone.
public func threadName(pid: Int32, tid: Int32) -> String {
    // Bytes, not always UTF-8: kept as they are (RawBytes).
    guard var bytes = try? ProcFile.readBytes("/proc/\(pid)/task/\(tid)/comm") else { return "" }
    if bytes.last == UInt8(ascii: "\n") { bytes.removeLast() }
    return RawBytes.decode(bytes)
}
