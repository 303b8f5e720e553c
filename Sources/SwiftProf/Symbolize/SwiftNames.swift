// Swift's simplified names and its compiler-made glue. The runtime's backtracer
// demangles to "Store.park<A>(key:)" (no module, no types); Swift users read
// "SwiftParked.Store.park<A>(key:)", so the module goes back in front of the
// declaration when the full name shows it there.
import CSwiftProf

enum SwiftNames {
    static func simplified(_ mangled: String, full: String) -> String? {
        guard var simple = Demangler.call(sp_demangle_swift_simplified, mangled), !simple.isEmpty else { return nil }
        if let module = moduleName(mangled) { simple = qualified(simple, module: module, full: full) }
        if isAsync(full) && !simple.hasSuffix(" async") { simple += " async" }
        return simple
    }

    /// Reabstraction and partial-application thunks, @objc and dispatch thunks,
    /// protocol witnesses: frames between the caller and the code it meant to call.
    static func isThunk(_ full: String) -> Bool {
        var name = Substring(full)
        // "(1) await resume partial function for X": the part of X after a suspension.
        if name.hasPrefix("("), let range = name.firstRange(of: " partial function for ") { name = name[range.upperBound...] }
        return thunkPrefixes.contains { name.hasPrefix($0) }
    }

    private static let thunkPrefixes = [
        "reabstraction thunk", "thunk for ", "partial apply forwarder for ", "partial apply for ", "@objc ",
        "@nonobjc ", "dispatch thunk of ", "protocol witness for ", "vtable thunk for ", "dynamic thunk for ",
        "autoclosure thunk", "outlined thunk",
    ]

    /// A mangled async partial function: TQ<n>_ (after an await) or TY<n>_ (the resume of
    /// a suspension), as Swift's backtracer recognises them.
    static func isPartialFunction(_ mangled: String) -> Bool {
        var rest = Substring(mangled)
        guard rest.hasSuffix("_") else { return false }
        rest = rest.dropLast()
        while let last = rest.last, last.isASCII, last.isNumber { rest = rest.dropLast() }
        return rest.hasSuffix("TQ") || rest.hasSuffix("TY")
    }

    /// An async function's own signature ends in ") async" at the top level
    /// (an async closure among its parameters does not count).
    static func isAsync(_ full: String) -> Bool {
        if full.contains("resume partial function for ") || full.hasPrefix("async function pointer to ") { return true }
        var depth = 0
        var index = full.startIndex
        while index < full.endIndex {
            switch full[index] {
            case "(", "<", "[": depth += 1
            case ")", ">", "]":
                depth -= 1
                if depth == 0, full[index] == ")", full[full.index(after: index)...].hasPrefix(" async") { return true }
            default: break
            }
            index = full.index(after: index)
        }
        return false
    }

    /// The module a Swift symbol belongs to: its first identifier (`$s11SwiftParked...`),
    /// or Swift for the standard library's `$ss...`.
    static func moduleName(_ mangled: String) -> String? {
        guard let prefix = ["_$s", "$s", "_$S", "$S", "_$e", "$e"].first(where: { mangled.hasPrefix($0) }) else { return nil }
        let rest = mangled.dropFirst(prefix.count)
        if rest.hasPrefix("s") { return "Swift" }
        let digits = rest.prefix { $0.isASCII && $0.isNumber }
        guard !digits.hasPrefix("0"), let length = Int(digits), length > 0 else { return nil }
        let name = rest.dropFirst(digits.count).prefix(length)
        return name.count == length ? String(name) : nil
    }

    /// Puts `module.` before the declaration the simplified name ends with ("closure #1
    /// in waitUntilParked()" → "closure #1 in SwiftParked.waitUntilParked()"), when
    /// the full name has it there.
    static func qualified(_ simple: String, module: String, full: String) -> String {
        // A closure of top-level code has the module as its whole context: "closure #2 in ".
        if simple.hasSuffix(" in "), full.hasSuffix(" in \(module)") { return simple + module }
        var start = simple.startIndex
        for marker in [" in ", " of ", " for "] {
            if let range = lastTopLevel(marker, in: simple), range.upperBound > start { start = range.upperBound }
        }
        for word in ["static ", "@objc ", "@nonobjc ", "dispatch thunk of "] where simple[start...].hasPrefix(word) {
            start = simple.index(start, offsetBy: word.count)
        }
        let component = simple[start...].prefix { !".(< ".contains($0) }
        guard !component.isEmpty, full.contains("\(module).\(component)") || full.contains("\(module).(\(component) in ")
        else { return simple }
        return String(simple[..<start]) + module + "." + simple[start...]
    }

    private static func lastTopLevel(_ marker: String, in text: String) -> Range<String.Index>? {
        var found: Range<String.Index>?
        var depth = 0
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            if "(<[".contains(character) { depth += 1 } else if ")>]".contains(character) { depth -= 1 }
            if depth == 0, text[index...].hasPrefix(marker) { found = index..<text.index(index, offsetBy: marker.count) }
            index = text.index(after: index)
        }
        return found
    }
}
