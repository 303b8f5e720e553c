// `--format folded`: Brendan Gregg's collapsed stacks, the input of
// flamegraph.pl, inferno and speedscope: `root;...;leaf count`, one line a
// stack, sorted. Inlined functions are frames of their own; kernel frames end
// in "_[k]" as perf's stackcollapse marks them.

public struct FoldedWriter: Sendable {
    /// Start every stack with the thread's name.
    public var threadNames: Bool

    public init(threadNames: Bool = false) { self.threadNames = threadNames }

    public func write(_ document: ProfileDocument) -> String {
        var counts: [String: Int] = [:]
        if threadNames && !document.threads.isEmpty {
            for thread in document.threads {
                let roots = (thread.process.map { [FoldedWriter.root([$0])] } ?? []) + [FoldedWriter.root(thread.name)]
                counts[(roots + FoldedWriter.frames(thread.locations)).joined(separator: ";"), default: 0] += 1
            }
        } else {
            // Groups: weighted by their counts, never expanded (an input's count may be 2^40).
            for record in document.records {
                var roots = record.processes.isEmpty ? [] : [FoldedWriter.root(record.processes)]
                if threadNames { roots.append(FoldedWriter.root(record.threadNames.count == 1 ? record.threadNames[0] : "")) }
                counts[(roots + FoldedWriter.frames(record.locations)).joined(separator: ";"), default: 0] += record.count
            }
        }
        return counts.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            .map { "\($0) \(counts[$0]!)\n" }.joined()
    }

    /// A process as the root frame, as perf's stackcollapse roots a stack in its
    /// process: what ps shows and the pid, `nginx: worker process (1235)`; a record
    /// merged from several, `nginx: worker process (2 processes)`.
    static func root(_ processes: [ProcessIdentity]) -> String {
        let commands = Set(processes.map(\.commandLine))
        let command = commands.count == 1 ? commands.first! : "\(commands.count) commands"
        let which = processes.count == 1 ? (processes[0].pid == 0 ? "" : " (\(processes[0].pid))") : " (\(processes.count) processes)"
        return clean(command + which)
    }

    static func root(_ threadName: String) -> String { threadName.isEmpty ? "[unnamed]" : clean(threadName) }

    /// Root first: the outermost location's outermost line, down to the leaf.
    static func frames(_ locations: [Location]) -> [String] {
        locations.reversed().flatMap { location in
            location.lines.reversed().map { line in
                clean(Location.displayName(line, of: location)) + (location.isKernel ? "_[k]" : "")
            }
        }
    }

    /// ";" separates frames, a line ends a stack and the last space the count: a
    /// name keeps none of them (control characters become spaces).
    static func clean(_ name: String) -> String {
        String(String.UnicodeScalarView(name.unicodeScalars.map { scalar in
            scalar == ";" ? ":" : (scalar.value < 0x20 || scalar.value == 0x7f ? " " : scalar)
        }))
    }
}
