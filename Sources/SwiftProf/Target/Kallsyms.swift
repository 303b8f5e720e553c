// Kernel symbol addresses from /proc/kallsyms, which shows zeros unless the
// reader may see them (root with kernel.kptr_restrict < 2).

public struct Kallsyms: Sendable {
    private let addresses: [String: UInt64]

    /// The addresses of `names` (text symbols); nil when the kernel hides them.
    public static func load(_ names: Set<String>) -> Kallsyms? {
        guard !names.isEmpty, let text = try? ProcFile.read("/proc/kallsyms") else { return nil }
        var found: [String: UInt64] = [:]
        var hidden = false
        for line in text.utf8.split(separator: UInt8(ascii: "\n")) {
            // "ffffffff81731ef0 t do_epoll_wait [module]"
            let fields = line.split(separator: UInt8(ascii: " "), maxSplits: 3)
            guard fields.count >= 3, fields[1].count == 1, fields[1].first! | 0x20 == UInt8(ascii: "t") else { continue }
            let name = String(decoding: fields[2].prefix { $0 != UInt8(ascii: "\t") }, as: UTF8.self)
            guard names.contains(name), found[name] == nil else { continue }
            let address = UInt64(String(decoding: fields[0], as: UTF8.self), radix: 16) ?? 0
            if address == 0 { hidden = true; break }
            found[name] = address
            if found.count == names.count { break }
        }
        return hidden || found.isEmpty ? nil : Kallsyms(addresses: found)
    }

    public func address(of name: String) -> UInt64? { addresses[name] }
}
