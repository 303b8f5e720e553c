// Mangled names made readable: Swift through the Swift runtime (full, or the
// backtracer's simplified form with the module put back), C++ through
// libstdc++'s __cxa_demangle, Rust (legacy and v0) through libiberty.
import CSwiftProf
import Glibc

public enum SwiftNameStyle: String, CaseIterable, Sendable {
    /// `SwiftParked.Store.park<A where A: Swift.Hashable>(key: A) -> Swift.Never`
    case full
    /// `SwiftParked.Store.park<A>(key:)`; async functions end in " async".
    case simplified
}

public struct NameOptions: Sendable, Equatable {
    public var demangle: Bool
    public var swiftNames: SwiftNameStyle
    /// C++ and Rust names without template arguments, parameter lists or return types.
    public var shortNames: Bool

    public init(demangle: Bool = true, swiftNames: SwiftNameStyle = .full, shortNames: Bool = false) {
        self.demangle = demangle
        self.swiftNames = swiftNames
        self.shortNames = shortNames
    }
}

/// A symbol as it is shown, and whether it is compiler-made glue (a thunk).
public struct DemangledName: Equatable, Sendable {
    public var display: String
    public var isThunk: Bool
}

public enum Demangler {
    public static func demangle(_ name: String) -> String { demangled(name, NameOptions()).display }

    public static func demangled(_ name: String, _ options: NameOptions) -> DemangledName {
        if isSwiftSymbol(name), let full = call(sp_demangle_swift, name) {
            let thunk = SwiftNames.isThunk(full)
            guard options.demangle else { return DemangledName(display: name, isThunk: thunk) }
            let display = options.swiftNames == .simplified ? SwiftNames.simplified(name, full: full) ?? full : full
            return DemangledName(display: display, isThunk: thunk)
        }
        guard options.demangle else { return DemangledName(display: name, isThunk: false) }
        if isRustSymbol(name), let rust = call(sp_demangle_rust, name) {
            return DemangledName(display: options.shortNames ? ShortNames.trim(rust) : rust, isThunk: false)
        }
        if name.hasPrefix("_Z"), let cxx = call(sp_demangle_cxx, name) {
            return DemangledName(display: options.shortNames ? ShortNames.trim(cxx) : cxx, isThunk: false)
        }
        return DemangledName(display: name, isThunk: false)
    }

    static func isSwiftSymbol(_ name: String) -> Bool {
        ["$s", "_$s", "$S", "_$S", "_T0", "$e", "_$e"].contains { name.hasPrefix($0) }
    }

    /// v0 (`_R`), or legacy: an Itanium-style path ending in a `17h<16 hex digits>E` hash.
    static func isRustSymbol(_ name: String) -> Bool {
        if name.hasPrefix("_R") { return true }
        guard name.hasPrefix("_ZN") else { return false }
        // LLVM may append ".llvm.NNNN" to a local symbol; "vtable.shim" inside is part of the name.
        let base = name.firstRange(of: ".llvm.").map { String(name[..<$0.lowerBound]) } ?? name
        guard base.hasSuffix("E"), base.count > 21 else { return false }
        let hash = base.dropLast().suffix(19)
        return hash.hasPrefix("17h") && hash.dropFirst(3).allSatisfy(\.isHexDigit)
    }

    static func call(_ demangler: (UnsafePointer<CChar>) -> UnsafeMutablePointer<CChar>?, _ name: String) -> String? {
        guard let result = name.withCString(demangler) else { return nil }
        defer { free(result) }
        return String(cString: result)
    }
}
