// `--format layers`: the interaction matrix as an aligned terminal table (in
// colour when asked) or as a Markdown table.

public struct LayersTableWriter: Sendable {
    public var markdown: Bool
    public var color: Bool

    /// What the last column counts.
    public var unit: CountUnit

    public init(markdown: Bool = false, color: Bool = false, unit: CountUnit = CountUnit("thread")) {
        self.markdown = markdown
        self.color = color
        self.unit = unit
    }

    /// The matrix's headers, the count's named by what it counts.
    private var headers: [String] { InteractionMatrix.headers.dropLast() + [unit.plural.prefix(1).uppercased() + unit.plural.dropFirst()] }

    public func write(_ rows: [InteractionRow]) -> String {
        markdown ? writeMarkdown(rows) : writeTable(rows)
    }

    /// ANSI colours of the columns: app, runtime, syscall, kernel, hardware.
    private static let colors = ["32", "34", "33", "35", "36"]

    private func writeTable(_ rows: [InteractionRow]) -> String {
        let header = headers.map { $0.uppercased() }
        let cells = rows.map { $0.columns.map(printable) + [String($0.threads)] }
        let widths = header.indices.map { column in
            ([header[column]] + cells.map { $0[column] }).map(\.unicodeScalars.count).max() ?? 0
        }
        func line(_ values: [String], bold: Bool) -> String {
            var text = ""
            for (column, value) in values.enumerated() {
                let padding = String(repeating: " ", count: widths[column] - value.unicodeScalars.count)
                let isCount = column == values.count - 1
                let padded = isCount ? padding + value : value + padding
                let code = bold ? "1" : (isCount ? nil : Self.colors[column])
                text += color && code != nil ? "\u{1b}[\(code!)m\(padded)\u{1b}[0m" : padded
                if !isCount { text += "  " }
            }
            return text
        }
        return ([line(header, bold: true)] + cells.map { line($0, bold: false) }).joined(separator: "\n") + "\n"
    }

    private func writeMarkdown(_ rows: [InteractionRow]) -> String {
        func escape(_ text: String) -> String { printable(text).replacing("|", with: "\\|") }
        var text = "| " + headers.joined(separator: " | ") + " |\n"
        text += "| --- | --- | --- | --- | --- | ---: |\n"
        for row in rows {
            text += "| " + (row.columns.map(escape) + [String(row.threads)]).joined(separator: " | ") + " |\n"
        }
        return text
    }
}
