// Two profiles compared by symbolized stack, addresses ignored: the stacks
// that appeared, vanished or changed count, largest change first. Where the
// profiles span several processes, a stack is also told apart by its process's
// name (what ps shows), never by its pid: the same program runs under another
// pid the next time. A frame without a symbol is its object and the offset in
// it, the same in every run. Kernel frames are compared only when both profiles
// have them: a capture without them (--no-kernel, a core) is the same stacks.

public struct StackDiff: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        /// Leaf first, as in the profiles; addresses cleared (they do not take part).
        public var locations: [Location]
        /// The names of its processes, where the profiles span several (else empty).
        public var processes: [String] = []
        public var before: Int
        public var after: Int
        public var change: Int { after - before }
    }

    public var beforeTotal: Int
    public var afterTotal: Int
    /// Changed stacks only: by the size of the change, growth first, then by stack.
    public var entries: [Entry]

    /// Whether kernel frames took part: only when both profiles have some.
    public var comparesKernelFrames = true

    public init(before: ProfileDocument, after: ProfileDocument) {
        struct Key: Hashable {
            let processes: [String]
            let frames: [String]
        }
        let hasKernel = { (document: ProfileDocument) in document.records.contains { $0.locations.contains(where: \.isKernel) } }
        let withKernel = hasKernel(before) && hasKernel(after)
        comparesKernelFrames = withKernel || (!hasKernel(before) && !hasKernel(after))
        func compared(_ record: Record) -> [Location] { withKernel ? record.locations : record.locations.filter { !$0.isKernel } }
        func key(_ record: Record) -> Key {
            Key(processes: Array(Set(record.processes.map(\.commandLine))).sorted(), frames: compared(record).flatMap { location in
                location.lines.map { "\(Location.displayName($0, of: location))\u{0}\($0.file)\u{0}\($0.line)\u{0}\(location.isKernel)" }
            })
        }
        var entries: [Key: Entry] = [:]
        var order: [Key] = []
        func add(_ record: Record, before: Int, after: Int) {
            let key = key(record)
            if entries[key] == nil {
                order.append(key)
                let symbolic = compared(record).map { location in
                    Location(address: 0, module: location.isKernel ? Location.kernelModule : "", lines: location.lines.map {
                        FrameLine(function: Location.displayName($0, of: location), offset: 0, file: $0.file, line: $0.line)
                    })
                }
                entries[key] = Entry(locations: symbolic, processes: key.processes, before: 0, after: 0)
            }
            entries[key]!.before += before
            entries[key]!.after += after
        }
        for record in before.records { add(record, before: record.count, after: 0) }
        for record in after.records { add(record, before: 0, after: record.count) }
        beforeTotal = before.total
        afterTotal = after.total
        self.entries = order.compactMap { entries[$0] }.filter { $0.change != 0 }
            .map { ($0, $0.processes.joined(separator: "\n") + "\n" + StackDiff.describe($0.locations)) }
            .sorted { lhs, rhs in
                let (a, b) = (lhs.0.change, rhs.0.change)
                if abs(a) != abs(b) { return abs(a) > abs(b) }
                if a != b { return a > b }
                return lhs.1.utf8.lexicographicallyPrecedes(rhs.1.utf8)
            }.map(\.0)
    }

    static func describe(_ locations: [Location]) -> String {
        locations.flatMap { location in location.lines.map { "\($0.function) \($0.file):\($0.line)" } }.joined(separator: "\n")
    }
}

/// The diff as text that itself diffs well: a header, then one block a stack,
/// its change and counts on the first line, its frames as aligned "#" lines.
public struct StackDiffWriter: Sendable {
    public init() {}

    public func write(_ diff: StackDiff) -> String {
        let net = diff.afterTotal - diff.beforeTotal
        var text = "thread diff: before total \(diff.beforeTotal), after total \(diff.afterTotal) (\(net >= 0 ? "+" : "")\(net))\n"
        if !diff.comparesKernelFrames { text += "# kernel frames left out: one of the profiles has none\n" }
        text += "\(diff.entries.count) \(diff.entries.count == 1 ? "stack" : "stacks") changed\n\n"
        let tabs = TabWriter(widestAligned: PprofTextWriter.widestAlignedName)
        for entry in diff.entries {
            let what = entry.before == 0 ? " appeared" : (entry.after == 0 ? " vanished" : "")
            text += "\(entry.change > 0 ? "+" : "")\(entry.change) (\(entry.before) -> \(entry.after))\(what)\n"
            if !entry.processes.isEmpty {
                text += (entry.processes.count == 1 ? "# process: " : "# processes: ")
                    + entry.processes.map(NameQuoting.alwaysQuoted).joined(separator: ", ") + "\n"
            }
            text += tabs.format(entry.locations.flatMap { location in
                location.lines.map { line in
                    let file = line.file.isEmpty ? "??" : line.file
                    return "#\t\(line.function.isEmpty ? "??" : line.function)\t\(file):\(line.line)"
                }
            })
            text += "\n"
        }
        return text
    }

    /// A pprof profile whose sample values are the changes (negative where a stack
    /// shrank), so `go tool pprof -top` ranks what changed most.
    public func writePprof(_ diff: StackDiff) -> [UInt8] {
        let records = diff.entries.map { entry in
            var record = Record(count: max(entry.before, entry.after), locations: entry.locations, truncation: nil)
            record.processes = entry.processes.map { ProcessIdentity(pid: 0, commandLine: $0, name: "") }
            return record
        }
        let document = ProfileDocument(records: records)
        return PprofProto.gzip(PprofProto.encode(document, sampleType: "thread", values: diff.entries.map { Int64($0.change) }))
    }
}
