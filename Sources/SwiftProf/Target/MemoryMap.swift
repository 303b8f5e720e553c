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

    public var isExecutable: Bool { permissions.dropFirst(2).first == "x" }
    public var isReadable: Bool { permissions.first == "r" }
    /// Backed by a file we can open (not anonymous, not a `[special]` region).
    public var isFileBacked: Bool { path.hasPrefix("/") && inode != 0 }
    public var isDeleted: Bool { path.hasSuffix(" (deleted)") }

    public func contains(_ address: UInt64) -> Bool { address >= start && address < end }
}

public struct MemoryMap: Equatable, Sendable {
    public let regions: [MemoryRegion]

    public init(regions: [MemoryRegion]) { self.regions = regions.sorted { $0.start < $1.start } }

    public init(parsing text: String) {
        self.init(regions: text.split(separator: "\n").compactMap(MemoryMap.parseLine))
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

    static func parseLine(_ line: Substring) -> MemoryRegion? {
        // start-end perms offset dev inode [path]; the path may contain spaces.
        var fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
        guard fields.count >= 5 else { return nil }
        let range = fields[0].split(separator: "-")
        guard range.count == 2, let start = UInt64(range[0], radix: 16), let end = UInt64(range[1], radix: 16),
              let offset = UInt64(fields[2], radix: 16), let inode = UInt64(fields[4]) else { return nil }
        let path = fields.count > 5 ? String(fields.removeLast().drop(while: { $0 == " " })) : ""
        return MemoryRegion(start: start, end: end, permissions: String(fields[1]), offset: offset,
                            inode: inode, path: path, line: String(line))
    }
}
