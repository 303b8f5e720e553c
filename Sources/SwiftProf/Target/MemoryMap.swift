import Glibc

// The target's address space as /proc/PID/maps lists it.

public struct MemoryRegion: Equatable, Sendable {
    public let start: UInt64
    public let end: UInt64
    public let permissions: String
    public let offset: UInt64
    public let inode: UInt64
    /// The path, `[stack]`/`[vdso]`/... for special regions, "" for anonymous memory.
    public let path: String
    /// The line exactly as the kernel printed it (for `--- Memory map: ---`).
    public let line: String

    // Asked for every frame of every walk: decided once, at parsing.
    public let isExecutable: Bool
    public let isReadable: Bool
    public let isWritable: Bool
    /// Backed by a file we can open (not anonymous, not a `[special]` region).
    public let isFileBacked: Bool
    public var isDeleted: Bool { path.hasSuffix(" (deleted)") }
    /// The device of the file mapped ("fd:01"), as the kernel printed it.
    public var device: Substring? {
        let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
        return fields.count > 4 ? fields[3] : nil
    }

    public func contains(_ address: UInt64) -> Bool { address >= start && address < end }
}

public struct MemoryMap: Equatable, Sendable {
    public let regions: [MemoryRegion]

    public init(regions: [MemoryRegion]) { self.regions = regions.sorted { $0.start < $1.start } }

    public init(parsing text: String) {
        self.init(regions: ProcText.lines(ArraySlice(text.utf8)).compactMap(MemoryMap.parseLine))
    }

    public static func read(pid: Int32) throws(SystemError) -> MemoryMap {
        MemoryMap(parsing: try ProcFile.read("/proc/\(pid)/maps"))
    }

    public func region(containing address: UInt64) -> MemoryRegion? {
        var low = 0, high = regions.count
        while low < high {
            let mid = (low + high) / 2
            if regions[mid].end <= address { low = mid + 1 } else { high = mid }
        }
        return low < regions.count && regions[low].contains(address) ? regions[low] : nil
    }

    /// The regions of one mapped file, in address order.
    public func regions(ofFile path: String) -> [MemoryRegion] { regions.filter { $0.path == path } }

    static func parseLine(_ line: ArraySlice<UInt8>) -> MemoryRegion? {
        // start-end perms offset dev inode [path]; the path may contain spaces.
        var fields: [ArraySlice<UInt8>] = []
        var rest = line[...]
        while fields.count < 5 {
            rest = rest.drop { $0 == UInt8(ascii: " ") }
            guard !rest.isEmpty else { break }
            let field = rest.prefix { $0 != UInt8(ascii: " ") }
            fields.append(field)
            rest = rest[field.endIndex...]
        }
        guard fields.count == 5, let dash = fields[0].firstIndex(of: UInt8(ascii: "-")),
              let start = ProcText.hexDigits(fields[0][..<dash]), let end = ProcText.hexDigits(fields[0][(dash + 1)...]),
              let offset = ProcText.hexDigits(fields[2]), let inode = ProcText.decimal(fields[4]) else { return nil }
        let path = ProcText.string(rest.drop { $0 == UInt8(ascii: " ") })
        let permissions = Array(fields[1])
        return MemoryRegion(start: start, end: end, permissions: ProcText.string(fields[1]), offset: offset, inode: inode,
                            path: path, line: ProcText.string(line),
                            isExecutable: permissions.count > 2 && permissions[2] == UInt8(ascii: "x"),
                            isReadable: permissions.first == UInt8(ascii: "r"),
                            isWritable: permissions.count > 1 && permissions[1] == UInt8(ascii: "w"),
                            isFileBacked: path.hasPrefix("/") && inode != 0)
    }
}

extension MemoryMap {
    /// The lines a profile carries (its mappings, `--memory-map`), with the program named
    /// as it was started where that was a link to it: Debian's redis-server is a link to
    /// redis-check-rdb, which /proc/PID/maps names, so go tool pprof said "File:
    /// redis-check-rdb" of what everyone calls redis-server. The kernel names a process
    /// (comm) by the path it was started through; a link of that name beside the program
    /// is taken only when it is the same file (device and inode).
    func documentLines(pid: Int32) -> [String] {
        let lines = regions.map(\.line)
        guard let target = ProcFile.linkTarget("/proc/\(pid)/exe").map(RawBytes.decode),
              let comm = try? ProcFile.read("/proc/\(pid)/comm"),
              let slash = target.lastIndex(of: "/") else { return lines }
        let name = String(comm.prefix { $0 != "\n" })
        let link = String(target[...slash]) + name
        guard !name.isEmpty, !name.contains("/"), link != target, Self.isLink(link, to: target) else { return lines }
        let suffix = Array((" " + target).utf8)
        return lines.map { line in
            let bytes = Array(line.utf8)
            guard bytes.count > suffix.count, bytes.suffix(suffix.count).elementsEqual(suffix) else { return line }
            return String(decoding: bytes.dropLast(target.utf8.count), as: UTF8.self) + link
        }
    }

    /// Whether `link` is a symbolic link whose file is `target`'s.
    private static func isLink(_ link: String, to target: String) -> Bool {
        var own = stat(), resolved = stat(), file = stat()
        guard lstat(link, &own) == 0, own.st_mode & S_IFMT == S_IFLNK,
              stat(link, &resolved) == 0, stat(target, &file) == 0 else { return false }
        return resolved.st_dev == file.st_dev && resolved.st_ino == file.st_ino
    }
}
