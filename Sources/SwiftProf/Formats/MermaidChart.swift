// `--format mermaid`: the interaction matrix as a Mermaid flowchart in the style
// of the reference document: one subgraph a layer, nodes from the real frames,
// edges labelled with how many threads (or samples, goroutines, tasks) take them.

public struct MermaidChartWriter: Sendable {
    /// What the edges' counts count.
    public var unit: CountUnit

    public init(unit: CountUnit = CountUnit("thread")) { self.unit = unit }

    static let subgraphs = [("Application", "Application"), ("Runtime", "Runtime"), ("SystemCalls", "System Calls"),
                            ("Kernel", "Linux Kernel"), ("Hardware", "Hardware")]
    static let prefixes = ["app", "rt", "sys", "k", "hw"]

    public func write(_ rows: [InteractionRow]) -> String {
        // Nodes per column in order of first appearance; "—" and "none" are no node.
        var nodes: [[String]] = Array(repeating: [], count: Self.subgraphs.count)
        var edges: [(from: String, to: String, threads: Int)] = []
        for row in rows {
            var previous: String?
            for (column, value) in row.columns.enumerated() where !value.hasPrefix(InteractionMatrix.none) && value != "none" {
                if !nodes[column].contains(value) { nodes[column].append(value) }
                let id = Self.prefixes[column] + String(nodes[column].firstIndex(of: value)!)
                if let previous {
                    if let index = edges.firstIndex(where: { $0.from == previous && $0.to == id }) {
                        edges[index].threads += row.threads
                    } else {
                        edges.append((previous, id, row.threads))
                    }
                }
                previous = id
            }
        }
        var text = "flowchart LR\n"
        for (column, (id, title)) in Self.subgraphs.enumerated() where !nodes[column].isEmpty {
            text += "    subgraph \(id)[\"\(title)\"]\n"
            for (index, value) in nodes[column].enumerated() {
                text += "        \(Self.prefixes[column])\(index)[\"\(Self.escape(value))\"]\n"
            }
            text += "    end\n"
        }
        for edge in edges {
            text += "    \(edge.from) -->|\"\(unit.counted(edge.threads))\"| \(edge.to)\n"
        }
        return text
    }

    /// Mermaid labels are HTML-ish: quotes and angle brackets go as entity codes.
    static func escape(_ text: String) -> String {
        escaping(printable(text), ["\"": "#34;", "<": "#60;", ">": "#62;", "#": "#35;"])
    }
}
