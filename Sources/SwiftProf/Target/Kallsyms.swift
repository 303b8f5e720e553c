// Kernel symbol addresses from /proc/kallsyms, which shows zeros unless the
// reader may see them (root with kernel.kptr_restrict < 2). The file is about
// 5 MB and 120,000 lines: it is scanned as bytes, and a name is compared only
// when its hash is one of the wanted ones.

public struct Kallsyms: Sendable {
    private let addresses: [String: UInt64]
    /// The loadable module each symbol found in one is in ("ext4"); core kernel symbols have none.
    let modules: [String: String]
    /// Where each module's text starts (/proc/modules), and the core kernel's (_text):
    /// what relative addresses are counted from, as user addresses from their object's
    /// load bias. Kernel addresses move at every boot (KASLR); these offsets do not.
    private let bases: [String: UInt64]

    /// What relative addresses of core kernel symbols are counted from.
    static let coreBase = "_text"

    init(addresses: [String: UInt64], modules: [String: String] = [:]) {
        self.addresses = addresses
        self.modules = modules
        var bases: [String: UInt64] = [:]
        if let text = addresses[Self.coreBase] { bases[""] = text }
        if !modules.isEmpty { bases.merge(Self.moduleBases(), uniquingKeysWith: { core, _ in core }) }
        self.bases = bases
    }

    var all: [String: UInt64] { addresses }

    /// What `name`'s relative address is counted from; nil when unknown.
    public func base(of name: String) -> UInt64? { bases[modules[name] ?? ""] }

    /// "ext4 1048576 3 - Live 0xffffffffc0a00000": each module's load address.
    private static func moduleBases() -> [String: UInt64] {
        guard let text = try? ProcFile.read("/proc/modules") else { return [:] }
        var bases: [String: UInt64] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 6, fields[5].hasPrefix("0x"), let address = UInt64(fields[5].dropFirst(2), radix: 16),
                  address != 0 else { continue }
            bases[String(fields[0])] = address
        }
        return bases
    }

    /// The addresses of `names` (text symbols); nil when the kernel hides them.
    public static func load(_ names: Set<String>) -> Kallsyms? {
        guard !names.isEmpty, let bytes = try? ProcFile.readBytes("/proc/kallsyms", chunk: 1 << 20) else { return nil }
        var wanted: [UInt64: [(name: String, bytes: [UInt8])]] = [:]
        for name in names { wanted[hash(Array(name.utf8)[...]), default: []].append((name, Array(name.utf8))) }
        var found: [String: UInt64] = [:]
        var modules: [String: String] = [:]
        var lineStart = 0
        let count = bytes.count
        while lineStart < count, found.count < names.count {
            var lineEnd = lineStart
            while lineEnd < count && bytes[lineEnd] != UInt8(ascii: "\n") { lineEnd += 1 }
            defer { lineStart = lineEnd + 1 }
            // "ffffffff81731ef0 t do_epoll_wait\t[module]"
            guard lineEnd - lineStart > 19, bytes[lineStart + 16] == UInt8(ascii: " "),
                  bytes[lineStart + 17] | 0x20 == UInt8(ascii: "t"), bytes[lineStart + 18] == UInt8(ascii: " ") else { continue }
            var nameEnd = lineStart + 19
            while nameEnd < lineEnd && bytes[nameEnd] != UInt8(ascii: "\t") { nameEnd += 1 }
            let name = bytes[(lineStart + 19)..<nameEnd]
            guard let candidates = wanted[hash(name)], let match = candidates.first(where: { $0.bytes.elementsEqual(name) }),
                  found[match.name] == nil else { continue }
            var address: UInt64 = 0
            for byte in bytes[lineStart..<(lineStart + 16)] {
                let digit = byte <= UInt8(ascii: "9") ? byte &- UInt8(ascii: "0") : (byte | 0x20) &- UInt8(ascii: "a") &+ 10
                address = address << 4 | UInt64(digit & 0xf)
            }
            if address == 0 { return nil }  // hidden: every address reads 0
            found[match.name] = address
            // "\t[ext4]" after the name: a module's symbol.
            if nameEnd + 2 < lineEnd, bytes[nameEnd + 1] == UInt8(ascii: "["), bytes[lineEnd - 1] == UInt8(ascii: "]") {
                modules[match.name] = String(decoding: bytes[(nameEnd + 2)..<(lineEnd - 1)], as: UTF8.self)
            }
        }
        return found.isEmpty ? nil : Kallsyms(addresses: found, modules: modules)
    }

    private static func hash(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return hash
    }

    public func address(of name: String) -> UInt64? { addresses[name] }
}
