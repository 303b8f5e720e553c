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
        // Several processes: a column of its own, first, for the process of each row.
        let perProcess = rows.contains { !$0.process.isEmpty }
        return markdown ? writeMarkdown(rows, perProcess: perProcess) : writeTable(rows, perProcess: perProcess)
    }

    private func cells(_ row: InteractionRow, perProcess: Bool) -> [String] {
        (perProcess ? [row.process] : []) + row.columns
    }

    /// ANSI colours of the columns: app, runtime, syscall, kernel, hardware.
    private static let colors = ["32", "34", "33", "35", "36"]

    private func writeTable(_ rows: [InteractionRow], perProcess: Bool) -> String {
        let header = ((perProcess ? ["Process"] : []) + headers).map { $0.uppercased() }
        let cells = rows.map { self.cells($0, perProcess: perProcess).map(printable) + [String($0.threads)] }
        let widths = header.indices.map { column in
            ([header[column]] + cells.map { $0[column] }).map(\.unicodeScalars.count).max() ?? 0
        }
        func line(_ values: [String], bold: Bool) -> String {
            var text = ""
            for (column, value) in values.enumerated() {
                let padding = String(repeating: " ", count: widths[column] - value.unicodeScalars.count)
                let isCount = column == values.count - 1
                let padded = isCount ? padding + value : value + padding
                let layer = perProcess ? column - 1 : column
                let code = bold ? "1" : (isCount || layer < 0 ? nil : Self.colors[layer])
                text += color && code != nil ? "\u{1b}[\(code!)m\(padded)\u{1b}[0m" : padded
                if !isCount { text += "  " }
            }
            return text
        }
        return ([line(header, bold: true)] + cells.map { line($0, bold: false) }).joined(separator: "\n") + "\n"
    }

    private func writeMarkdown(_ rows: [InteractionRow], perProcess: Bool) -> String {
        func escape(_ text: String) -> String { printable(text).replacing("|", with: "\\|") }
        var text = "| " + ((perProcess ? ["Process"] : []) + headers).joined(separator: " | ") + " |\n"
        text += (perProcess ? "| --- " : "") + "| --- | --- | --- | --- | --- | ---: |\n"
        for row in rows {
            text += "| " + (cells(row, perProcess: perProcess).map(escape) + [String(row.threads)]).joined(separator: " | ") + " |\n"
        }
        return text
    }
}
