import Glibc

// Threads blocked taking an advisory file lock, and who holds it: flock(2), and
// fcntl(2) with F_SETLKW or F_OFD_SETLKW. The descriptor is the call's first
// argument (from /proc, without a stop); /proc/PID/fd/N names the file and, through
// stat, its device and inode; /proc/locks lists every lock of the system by device
// and inode, with the process that took it, which may be any process.

/// One thread waiting for a file lock, and the processes holding a conflicting one.
public struct FileLockWait: Hashable, Sendable {
    public enum Kind: String, Sendable {
        case flock
        /// fcntl's POSIX record locks, and open-file-description locks (which conflict with them).
        case record = "fcntl lock"
    }
    public var waiter: Int32
    public var kind: Kind
    /// The file, as /proc/PID/fd names it.
    public var path: String
    /// Processes holding a lock on the file of the same family; -1 for an
    /// open-file-description lock, which records none.
    public var holders: [Int32]
}

/// A line of /proc/locks: `2: FLOCK  ADVISORY  WRITE 1234 fe:00:5309377 0 EOF`,
/// or a waiter's, with `->` after the number.
struct LockTableEntry: Equatable {
    var isWaiting: Bool
    /// FLOCK, POSIX, OFDLCK, LEASE...
    var family: String
    var pid: Int32
    /// `major:minor:inode` as the kernel prints it (hex, hex, decimal).
    var file: String
    var start: UInt64
    /// nil: to the end of the file.
    var end: UInt64?

    init?(line: Substring) {
        var words = line.split(separator: " ", omittingEmptySubsequences: true)[...]
        guard words.popFirst()?.last == ":" else { return nil }
        isWaiting = words.first == "->"
        if isWaiting { words = words.dropFirst() }
        guard words.count >= 7, let pid = Int32(words[words.startIndex + 3]),
              let start = UInt64(words[words.startIndex + 5]) else { return nil }
        family = String(words[words.startIndex])
        self.pid = pid
        file = String(words[words.startIndex + 4])
        self.start = start
        let last = words[words.startIndex + 6]
        guard last == "EOF" || UInt64(last) != nil else { return nil }
        end = UInt64(last)
    }

    func overlaps(_ other: LockTableEntry) -> Bool {
        start <= (other.end ?? .max) && other.start <= (end ?? .max)
    }

    var isRecordLock: Bool { family == "POSIX" || family == "OFDLCK" }
}

enum FileLocks {
    /// fcntl's commands that wait: F_SETLKW (7) and F_OFD_SETLKW (38).
    static let waitingCommands: Set<String> = ["7", "38"]

    /// The threads of `snapshot` blocked in flock or a waiting fcntl, in thread order,
    /// each with the holders /proc/locks lists for its file.
    static func find(in snapshot: Snapshot) -> [FileLockWait] {
        let calls = snapshot.threads.compactMap { thread -> (tid: Int32, call: SystemCall)? in
            guard let call = thread.state?.systemCall else { return nil }
            return (thread.tid, call)
        }
        return waits(pid: snapshot.pid, calls: calls)
    }

    /// Which of `calls` (a thread of `pid` and the system call it is blocked in) wait
    /// for a file lock, each with the holders /proc/locks lists for its file.
    static func waits(pid: Int32, calls: [(tid: Int32, call: SystemCall)]) -> [FileLockWait] {
        let blocked = calls.compactMap { (tid: Int32, call: SystemCall) -> (tid: Int32, kind: FileLockWait.Kind, fd: Int32)? in
            guard let first = call.arguments.first, let fd = Int32(first) else { return nil }
            if call.name == "flock" { return (tid, .flock, fd) }
            if call.name == "fcntl", call.arguments.count > 1, waitingCommands.contains(call.arguments[1]) {
                return (tid, .record, fd)
            }
            return nil
        }
        guard !blocked.isEmpty, let table = try? ProcFile.readBytes("/proc/locks") else { return [] }
        let entries = ProcText.lines(table[...]).compactMap { LockTableEntry(line: Substring(ProcText.string($0))) }
        return blocked.compactMap { waiter in
            let link = "/proc/\(pid)/fd/\(waiter.fd)"
            guard let file = fileKey(link) else { return nil }
            let family = { (entry: LockTableEntry) in waiter.kind == .flock ? entry.family == "FLOCK" : entry.isRecordLock }
            let onFile = entries.filter { $0.file == file && family($0) }
            // The ranges this process waits for (record locks); a flock is the whole file.
            let wanted = onFile.filter { $0.isWaiting && $0.pid == pid }
            let holders = onFile.filter { holder in
                !holder.isWaiting && (waiter.kind == .flock || holder.pid != pid)
                    && (waiter.kind == .flock || wanted.isEmpty || wanted.contains { $0.overlaps(holder) })
            }
            var pids: [Int32] = []
            for holder in holders where !pids.contains(holder.pid) { pids.append(holder.pid) }
            return FileLockWait(waiter: waiter.tid, kind: waiter.kind, path: linkTarget(link), holders: pids)
        }
    }

    /// `major:minor:inode` of the file a descriptor link points to, as /proc/locks prints it.
    static func fileKey(_ link: String) -> String? {
        var status = stat()
        guard stat(link, &status) == 0 else { return nil }
        let device = UInt64(status.st_dev)
        // glibc's gnu_dev_major/minor, which Swift does not import (they are macros).
        let major = ((device >> 8) & 0xfff) | ((device >> 32) & ~UInt64(0xfff))
        let minor = (device & 0xff) | ((device >> 12) & ~UInt64(0xff))
        return "\(hex2(major)):\(hex2(minor)):\(status.st_ino)"
    }

    private static func hex2(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return digits.count < 2 ? "0" + digits : digits
    }

    /// The path a descriptor link points to; its bytes as they are (a file name is
    /// the target's choice, quoted where it is printed).
    static func linkTarget(_ link: String) -> String {
        ProcFile.linkTarget(link).map(RawBytes.decode) ?? ""
    }
}
