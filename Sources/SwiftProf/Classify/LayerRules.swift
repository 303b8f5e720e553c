// Which frames are runtime and which are the application's, as data: ordered
// rules, each a layer and a glob over the frame's object (module) or function
// name. Rules given on the command line or in a file come before the built-in
// ones, so they can claim any frame.
import Glibc

public struct LayerRule: Hashable, Sendable {
    public enum Subject: String, Sendable {
        /// The basename of the object (`libc.so.6`), or its whole path when the glob has a "/".
        case module
        case function
    }

    public var layer: Layer
    public var subject: Subject
    public var pattern: String

    public init(layer: Layer, subject: Subject, pattern: String) {
        self.layer = layer
        self.subject = subject
        self.pattern = pattern
    }

    /// `LAYER=PATTERN`, as `--layer` takes it. A pattern naming an object (".so", a
    /// "/" or "[...]") matches modules, anything else function names;
    /// `module:` or `function:` before the pattern says which explicitly.
    public init(parsing text: String) throws(LayerRuleError) {
        guard let equals = text.firstIndex(of: "=") else { throw LayerRuleError(text: text, reason: "expected LAYER=PATTERN") }
        let layerName = String(text[..<equals])
        guard let layer = Layer(rawValue: layerName), layer != .kernel else {
            throw LayerRuleError(text: text, reason: "the layer must be app, runtime or syscall")
        }
        var pattern = String(text[text.index(after: equals)...])
        var subject: Subject
        if pattern.hasPrefix("module:") {
            subject = .module
            pattern.removeFirst("module:".count)
        } else if pattern.hasPrefix("function:") {
            subject = .function
            pattern.removeFirst("function:".count)
        } else {
            subject = pattern.contains(".so") || pattern.contains("/") || pattern.hasPrefix("[") ? .module : .function
        }
        guard !pattern.isEmpty else { throw LayerRuleError(text: text, reason: "empty pattern") }
        self.init(layer: layer, subject: subject, pattern: pattern)
    }

    func matches(module: String, function: String) -> Bool {
        switch subject {
        case .function:
            return !function.isEmpty && LayerRule.glob(pattern, function)
        case .module:
            guard !module.isEmpty else { return false }
            let name = pattern.contains("/") ? module : String(module.split(separator: "/").last ?? "")
            return LayerRule.glob(pattern, name)
        }
    }

    /// Shell-style globbing (`*`, `?`, `[...]`), where `*` also crosses "/" and "::".
    static func glob(_ pattern: String, _ text: String) -> Bool { fnmatch(pattern, text, 0) == 0 }
}

public struct LayerRuleError: Error, Equatable, CustomStringConvertible {
    public let text: String
    public let reason: String
    public var line: Int?

    public var description: String {
        (line.map { "line \($0): " } ?? "") + "bad layer rule \"\(text)\": \(reason)"
    }
}

public struct LayerRules: Sendable {
    public var rules: [LayerRule]

    public init(rules: [LayerRule]) { self.rules = rules }

    /// The user's rules first, then the built-in ones.
    public static func standard(adding user: [LayerRule] = []) -> LayerRules {
        LayerRules(rules: user + builtIn)
    }

    /// A rules file: one `LAYER=PATTERN` (or `LAYER PATTERN`) a line; `#` starts a comment.
    public static func parseFile(_ text: String) throws(LayerRuleError) -> [LayerRule] {
        var rules: [LayerRule] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first?.trimmedWhitespace ?? ""
            if line.isEmpty { continue }
            let normalized = line.contains("=") ? line : line.split(separator: " ", maxSplits: 1).joined(separator: "=")
            do { rules.append(try LayerRule(parsing: normalized)) } catch {
                var located = error
                located.line = index + 1
                throw located
            }
        }
        return rules
    }

    /// The first rule that matches; nil means the application.
    public func layer(module: String, function: String) -> Layer? {
        rules.first { $0.matches(module: module, function: function) }?.layer
    }

    static let builtIn: [LayerRule] = {
        let modules = [
            "libc.so*", "libc-*.so", "libpthread*.so*", "ld-linux*.so*", "ld-*.so*", "libdl.so*", "librt.so*",
            "libm.so*", "libstdc++.so*", "libc++.so*", "libc++abi.so*", "libgcc_s.so*", "libatomic.so*",
            "libswiftCore.so", "libswift_*.so", "libswift*.so", "libFoundation*.so", "lib_FoundationICU.so",
            "libdispatch.so", "libBlocksRuntime.so", "libicu*.so*", "[vdso]",
        ]
        let functions = [
            // C runtime start-up and thread entry, wherever the linker put them.
            "_start", "__libc_start*", "start_thread", "__clone*", "clone", "clone3", "_init", "_fini",
            // Go
            "runtime.*", "internal/*", "syscall.*", "runtime/*", "sync.*", "sync/*",
            // Rust
            "std::*", "core::*", "alloc::*", "tokio::*", "<std::*", "<core::*", "<alloc::*", "<tokio::*",
            "__rust_*", "rust_begin_unwind",
            // C++ library code instantiated in the program
            "std::*", "__gnu_cxx::*", "void std::*", "__cxxabiv1::*",
            // Swift
            "swift_*", "Swift.*", "Foundation.*", "Dispatch.*", "_dispatch_*", "static Swift.*",
            "reabstraction thunk*", "merged Swift.*", "generic specialization <* of Swift.*",
        ]
        return modules.map { LayerRule(layer: .runtime, subject: .module, pattern: $0) }
            + functions.map { LayerRule(layer: .runtime, subject: .function, pattern: $0) }
    }()
}
