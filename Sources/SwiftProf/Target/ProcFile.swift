// Reads /proc files, whose stat size is 0, with plain read(2) until EOF.
#if canImport(Glibc)
import Glibc
#endif

/// An errno from a system call, with the call and path that produced it.
public struct SystemError: Error, Equatable, CustomStringConvertible {
    public let call: String
    public let path: String
    public let errno: Int32

    public init(call: String, path: String = "", errno: Int32) {
        self.call = call
        self.path = path
        self.errno = errno
    }

    public var description: String {
        let reason = String(cString: strerror(errno))
        return path.isEmpty ? "\(call): \(reason)" : "\(call) \(path): \(reason)"
    }
}

enum ProcFile {
    static func read(_ path: String) throws(SystemError) -> String {
        String(decoding: try readBytes(path), as: UTF8.self)
    }

    /// The whole file; `chunk` sizes each read (large ones make big /proc files cheaper).
    static func readBytes(_ path: String, chunk size: Int = 16384) throws(SystemError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw SystemError(call: "open", path: path, errno: errno) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        // Not an array: zeroing 16 KiB for each of a thread's five small files was
        // most of reading them.
        let failure: Int32? = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: size) { chunk in
            while true {
                let n = Glibc.read(fd, chunk.baseAddress, chunk.count)
                if n < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                if n == 0 { return nil }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: chunk[0..<n]))
            }
        }
        if let failure { throw SystemError(call: "read", path: path, errno: failure) }
        return bytes
    }

    /// Where a symbolic link (a /proc/PID/fd entry) points, as bytes; nil if unreadable.
    static func linkTarget(_ path: String) -> [UInt8]? {
        let capacity = Int(PATH_MAX)
        let bytes = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, count in
            let length = buffer.withMemoryRebound(to: CChar.self) { readlink(path, $0.baseAddress!, capacity) }
            count = max(0, length)
        }
        return bytes.isEmpty ? nil : bytes
    }

    /// The names of a directory's subdirectories (a cgroup's children), sorted.
    static func subdirectories(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        let nameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!
        let typeOffset = MemoryLayout<dirent>.offset(of: \dirent.d_type)!
        while let entry = readdir(dir) {
            let raw = UnsafeRawPointer(entry)
            guard raw.load(fromByteOffset: typeOffset, as: UInt8.self) == UInt8(DT_DIR) else { continue }
            let name = String(cString: (raw + nameOffset).assumingMemoryBound(to: CChar.self))
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// The numeric entries of a /proc directory (tasks), sorted.
    static func numericEntries(_ path: String) throws(SystemError) -> [Int32] {
        guard let dir = opendir(path) else { throw SystemError(call: "opendir", path: path, errno: errno) }
        defer { closedir(dir) }
        var ids: [Int32] = []
        let nameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!
        let lengthOffset = MemoryLayout<dirent>.offset(of: \dirent.d_reclen)!
        while let entry = readdir(dir) {
            // Only d_reclen bytes of an entry exist: copying the struct (its 256-byte
            // d_name) reads past the last entry of readdir's buffer, which crashed
            // on 2,000 threads when the buffer ended at a page boundary.
            let name = UnsafeRawPointer(entry) + nameOffset
            let length = Int(UnsafeRawPointer(entry).loadUnaligned(fromByteOffset: lengthOffset, as: UInt16.self)) - nameOffset
            var value: Int32 = 0
            var digits = 0
            var valid = length > 0
            for index in 0..<max(0, length) {
                let byte = name.load(fromByteOffset: index, as: UInt8.self)
                if byte == 0 { break }
                guard byte >= 48 && byte <= 57, value < Int32.max / 10 - 9 else { valid = false; break }
                value = value * 10 + Int32(byte - 48)
                digits += 1
            }
            if valid && digits > 0 { ids.append(value) }
        }
        return ids.sorted()
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces, tabs and newlines (/proc values come padded).
    var trimmedWhitespace: String {
        let bytes = Array(utf8)
        guard let first = bytes.firstIndex(where: { !ProcText.isSpace($0) }),
              let last = bytes.lastIndex(where: { !ProcText.isSpace($0) }) else { return "" }
        return String(decoding: bytes[first...last], as: UTF8.self)
    }
}
