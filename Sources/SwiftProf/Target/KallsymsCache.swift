// Kernel addresses do not change until the next boot, and reading /proc/kallsyms
// costs 35 ms of kernel time: the addresses found are kept in
// ~/.cache/swiftprof/kallsyms-BOOT_ID (mode 0600), like perf keeps its caches
// in ~/.debug. The kernel is still asked, with one small read, whether this
// reader may see addresses now: a cache never shows what the kernel would hide.
import Glibc

enum KallsymsCache {
    /// The addresses of `names`: from the cache when it has them all, else from
    /// /proc/kallsyms (and the cache grows by what was found).
    /// The core kernel's start (Kallsyms.coreBase) is always looked up too.
    static func load(_ wanted: Set<String>) -> Kallsyms? {
        guard !wanted.isEmpty, kernelShowsAddresses() else { return nil }
        let names = wanted.union([Kallsyms.coreBase])
        guard let file = path() else { return Kallsyms.load(names) }
        var (cached, modules) = read(file)
        if names.isSubset(of: Set(cached.keys)) {
            return Kallsyms(addresses: cached.filter { names.contains($0.key) }, modules: modules.filter { names.contains($0.key) })
        }
        guard let fresh = Kallsyms.load(names) else { return nil }
        for (name, address) in fresh.all { cached[name] = address }
        modules.merge(fresh.modules, uniquingKeysWith: { _, new in new })
        write(cached, modules: modules, to: file)
        return fresh
    }

    /// The first line of /proc/kallsyms shows a zero address when this reader may not see them.
    static func kernelShowsAddresses() -> Bool {
        let fd = open("/proc/kallsyms", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        guard n >= 16 else { return false }
        return buffer[0..<16].contains { $0 != UInt8(ascii: "0") }
    }

    private static func path() -> String? {
        guard let boot = try? ProcFile.read("/proc/sys/kernel/random/boot_id").trimmedWhitespace, !boot.isEmpty,
              let directory = CacheDirectory.path() else { return nil }
        return directory + "/kallsyms-" + boot
    }

    /// "name address" or "name address module" lines; anything else is ignored.
    private static func read(_ file: String) -> ([String: UInt64], [String: String]) {
        guard let text = try? ProcFile.read(file) else { return ([:], [:]) }
        var entries: [String: UInt64] = [:]
        var modules: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count == 2 || fields.count == 3, let address = UInt64(fields[1], radix: 16), address != 0 else { continue }
            entries[String(fields[0])] = address
            if fields.count == 3 { modules[String(fields[0])] = String(fields[2]) }
        }
        return (entries, modules)
    }

    private static func write(_ entries: [String: UInt64], modules: [String: String], to file: String) {
        let text = entries.keys.sorted().map { "\($0) \(String(entries[$0]!, radix: 16))\(modules[$0].map { " " + $0 } ?? "")\n" }.joined()
        _ = CacheDirectory.replace(file, mode: 0o600) { fd in Array(text.utf8).withUnsafeBytes { writeFully(fd, $0) } }
    }
}
