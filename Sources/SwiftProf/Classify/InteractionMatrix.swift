// The reference document's "interaction matrix" computed from a snapshot: for
// each distinct path, the application component, where it enters the runtime,
// the system call, the kernel subsystem and the hardware it waits on.

public struct InteractionRow: Hashable, Sendable {
    /// "outermost → innermost" application frame, or the one frame, or "—".
    public var component: String
    /// The first frame below the application: the runtime or wrapper function it called.
    public var runtimeEntry: String
    public var systemCall: String
    public var subsystem: String
    public var hardware: String
    public var threads: Int
    /// Where a capture spans several processes: the process, as folded stacks root it ("" otherwise).
    public var process = ""

    public var columns: [String] { [component, runtimeEntry, systemCall, subsystem, hardware] }
}

public enum InteractionMatrix {
    public static let headers = ["Application", "Runtime entry", "System call", "Kernel subsystem", "Hardware", "Threads"]
    public static let none = "—"

    public static func rows(_ records: [Record], classifier: Classifier) -> [InteractionRow] {
        var counts: [[String]: Int] = [:]
        for record in records {
            let process = record.processes.isEmpty ? "" : FoldedWriter.root(record.processes)
            counts[[process] + row(record, classifier: classifier).columns, default: 0] += record.count
        }
        return counts.map { InteractionRow(component: $0.key[1], runtimeEntry: $0.key[2], systemCall: $0.key[3],
                                           subsystem: $0.key[4], hardware: $0.key[5], threads: $0.value, process: $0.key[0]) }
            .sorted { lhs, rhs in
                lhs.threads != rhs.threads ? lhs.threads > rhs.threads
                    : ([lhs.process] + lhs.columns).lexicographicallyPrecedes([rhs.process] + rhs.columns) { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            }
    }

    static func row(_ record: Record, classifier: Classifier) -> InteractionRow {
        let layers = classifier.layers(of: record)
        // Every logical frame with its layer, leaf first.
        let frames = zip(record.locations, layers).flatMap { location, layers in
            zip(location.lines.map(\.function), layers).map { (function: $0, layer: $1) }
        }
        let app = frames.indices.filter { frames[$0].layer == .app && !frames[$0].function.isEmpty }
        var component = none, entry = none
        if let inner = app.first, let outer = app.last {
            component = inner == outer ? frames[inner].function : "\(frames[outer].function) → \(frames[inner].function)"
            // Below it, past the application's frames that have no symbol (a stripped
            // program's static functions): the first runtime or library frame it called.
            if let below = frames[..<inner].lastIndex(where: { $0.layer != .app }), frames[below].layer != .kernel {
                entry = frames[below].function
            }
        } else if let outermostUser = frames.lastIndex(where: { $0.layer != .kernel && !$0.function.isEmpty }) {
            entry = frames[outermostUser].function  // runtime-only thread: where it starts
        }
        let call = record.state?.systemCall?.name ?? (record.state?.code == "R" ? "— (running)" : none)
        let path = record.state?.systemCall == nil && record.state?.code == "R" ? KernelPath(subsystem: none, hardware: "CPU")
            : KernelSubsystem.path(of: record)
        return InteractionRow(component: component, runtimeEntry: entry.isEmpty ? none : entry, systemCall: call,
                              subsystem: path.subsystem, hardware: path.hardware, threads: record.count)
    }
}
