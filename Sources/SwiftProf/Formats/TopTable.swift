// `swiftprof top`: the hottest functions of a sampling run so far (counts are
// cumulative since the start), as py-spy top shows them: "own" counts samples
// where the function is the leaf, "total" samples where it is anywhere on the
// stack (once a sample).

public struct TopEntry: Equatable, Sendable {
    public var function: String
    public var location: String
    public var own: Int
    public var total: Int
}

public struct TopTable: Sendable {
    public var entries: [TopEntry]
    /// Samples counted (of running threads only, unless idle ones were asked for).
    public var samples: Int

    /// `includeIdle`: count threads blocked in the kernel too, not only running ones.
    public init(records: [Record], includeIdle: Bool) {
        var own: [String: Int] = [:], total: [String: Int] = [:], where_: [String: String] = [:]
        var samples = 0
        for record in records where includeIdle || record.state?.code == "R" || record.state == nil {
            samples += record.count
            let lines = record.locations.filter { !$0.isKernel }.flatMap { location in
                // The file only: the line of a sample differs from sample to sample, and a
                // function's line changing between refreshes said nothing about it.
                location.lines.map { (name: Location.displayName($0, of: location),
                                      place: $0.file.isEmpty ? "" : String($0.file.split(separator: "/").last ?? "")) }
            }
            guard let leaf = lines.first else { continue }
            own[leaf.name, default: 0] += record.count
            var seen: Set<String> = []
            for line in lines where seen.insert(line.name).inserted {
                total[line.name, default: 0] += record.count
                if where_[line.name] == nil { where_[line.name] = line.place }
            }
        }
        entries = total.keys.map { TopEntry(function: $0, location: where_[$0] ?? "", own: own[$0] ?? 0, total: total[$0]!) }
            .sorted { ($0.own, $0.total) != ($1.own, $1.total) ? ($0.own, $0.total) > ($1.own, $1.total)
                        : $0.function.utf8.lexicographicallyPrecedes($1.function.utf8) }
        self.samples = samples
    }

    /// At most `rows` lines of table under a header, each cut to `width` columns.
    public func render(rows: Int, width: Int) -> [String] {
        func percent(_ count: Int) -> String {
            let tenths = samples > 0 ? (count * 1000 + samples / 2) / samples : 0
            let text = "\(tenths / 10).\(tenths % 10)%"
            return String(repeating: " ", count: max(0, 6 - text.count)) + text
        }
        func pad(_ text: String, _ size: Int) -> String { String(repeating: " ", count: max(0, size - text.count)) + text }
        var lines = ["  %Own %Total   Own  Total  Function (file)"]
        for entry in entries.prefix(max(0, rows - 1)) {
            let place = entry.location.isEmpty ? "" : " (\(entry.location))"
            lines.append("\(percent(entry.own)) \(percent(entry.total)) \(pad(String(entry.own), 5)) \(pad(String(entry.total), 6))  "
                         + printable("\(entry.function)\(place)"))
        }
        return lines.map { $0.count > width ? String($0.prefix(width)) : $0 }
    }
}
