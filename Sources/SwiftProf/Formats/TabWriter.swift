// Go's text/tabwriter as runtime/pprof configures it (minwidth 1, tabwidth 8,
// padding 1, padchar '\t', no flags), so that `#` lines align byte for byte
// like Go's. A cell is text ended by a tab; the text after a line's last tab is
// not part of any column. A column block is a run of consecutive lines that
// have a cell in that column; each block is as wide as its widest cell plus
// the padding, rounded up to a multiple of the tab width and filled with tabs.
// One exception, where asked: a cell wider than `widestAligned` does not widen its
// column (a C++ name of 200 characters would pad every line of its record to
// it); it is followed by one tab, and the columns after it on that line shift.

struct TabWriter {
    var minWidth = 1
    var tabWidth = 8
    var padding = 1
    /// Cells wider than this are left out of their column's width; nil: none is.
    var widestAligned: Int?

    /// Aligns `lines` (without their newlines) and returns them, each ended by "\n".
    func format(_ lines: [String]) -> String {
        let cells = lines.map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
        var output = ""
        var widths: [Int] = []
        render(cells, from: 0, to: cells.count, widths: &widths, into: &output)
        return output
    }

    private func render(_ lines: [[String]], from first: Int, to end: Int, widths: inout [Int], into output: inout String) {
        let column = widths.count
        var blockStart = first
        var line = first
        while line < end {
            if column >= lines[line].count - 1 {
                line += 1
                continue
            }
            write(lines, from: blockStart, to: line, widths: widths, into: &output)
            blockStart = line
            var width = minWidth
            while line < end, column < lines[line].count - 1 {
                let cellWidth = lines[line][column].unicodeScalars.count
                if widestAligned.map({ cellWidth <= $0 }) ?? true { width = max(width, cellWidth + padding) }
                line += 1
            }
            widths.append(width)
            render(lines, from: blockStart, to: line, widths: &widths, into: &output)
            widths.removeLast()
            blockStart = line
        }
        write(lines, from: blockStart, to: end, widths: widths, into: &output)
    }

    private func write(_ lines: [[String]], from first: Int, to end: Int, widths: [Int], into output: inout String) {
        guard first < end else { return }
        for line in lines[first..<end] {
            for (index, cell) in line.enumerated() {
                output += cell
                if index < widths.count {
                    let cellWidth = (widths[index] + tabWidth - 1) / tabWidth * tabWidth
                    let pad = cellWidth - cell.unicodeScalars.count
                    output += String(repeating: "\t", count: max(1, (pad + tabWidth - 1) / tabWidth))
                }
            }
            output += "\n"
        }
    }
}
