// Swift names through libswiftCore's swift_demangle, C++ (and Rust's legacy
// Itanium-style) names through libstdc++'s __cxa_demangle.
import CSwiftProf
import Glibc

public enum Demangler {
    public static func demangle(_ name: String) -> String {
        if isSwiftSymbol(name), let swift = call(sp_demangle_swift, name) { return swift }
        if name.hasPrefix("_Z"), let cxx = call(sp_demangle_cxx, name) { return cxx }
        return name
    }

    static func isSwiftSymbol(_ name: String) -> Bool {
        ["$s", "_$s", "$S", "_$S", "_T0", "$e", "_$e"].contains { name.hasPrefix($0) }
    }

    private static func call(_ demangler: (UnsafePointer<CChar>) -> UnsafeMutablePointer<CChar>?, _ name: String) -> String? {
        guard let result = name.withCString(demangler) else { return nil }
        defer { free(result) }
        return String(cString: result)
    }
}
