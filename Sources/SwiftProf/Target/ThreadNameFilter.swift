// `--threads GLOB`: only the threads whose name matches one of the patterns are
// captured (as py-spy users ask of big processes), so that the cost follows the
// threads chosen. Patterns are the shell's (fnmatch): `worker-*`, `io?`, `[ab]*`.
import Glibc

public struct ThreadNameFilter: Sendable, Equatable {
    public var patterns: [String]

    public init(_ patterns: [String] = []) { self.patterns = patterns }

    /// No pattern: every thread.
    public var admitsAll: Bool { patterns.isEmpty }

    /// The comment a profile made with the filter carries: it shows part of the process.
    public var comment: String? {
        patterns.isEmpty ? nil : "threads: only those named " + patterns.map(NameQuoting.quoted).joined(separator: " or ") + " (--threads)"
    }

    public func admits(_ name: String) -> Bool {
        patterns.isEmpty || patterns.contains { fnmatch($0, name, 0) == 0 }
    }
}
