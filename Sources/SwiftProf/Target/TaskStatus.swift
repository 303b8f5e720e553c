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
        let bytes = try ProcFile.readBytes(base + "/stat")
        guard let status = TaskStatus(parsingStat: bytes[...]) else {
            throw SystemError(call: "parse", path: base + "/stat", errno: EINVAL)
        }
        return status
    }

    /// Parses `pid (comm) state ppid ...`; comm may contain spaces and parentheses.
    public init?(parsingStat text: String) { self.init(parsingStat: ArraySlice(text.utf8)) }

    init?(parsingStat bytes: ArraySlice<UInt8>) {
        guard let open = bytes.firstIndex(of: UInt8(ascii: "(")), let close = bytes.lastIndex(of: UInt8(ascii: ")")),
              open < close else { return nil }
        name = ProcText.string(bytes[(open + 1)..<close])
        let rest = ProcText.words(bytes[(close + 1)...])
        // rest[0] is field 3 (state); flags is field 9, wchan field 35.
        guard rest.count > 6, let state = rest[0].first, let flags = ProcText.decimal(rest[6]) else {
            return nil
        }
        self.state = Character(Unicode.Scalar(state))
        self.flags = flags
        self.wchanAddress = rest.count > 32 ? ProcText.decimal(rest[32]) ?? 0 : 0
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
