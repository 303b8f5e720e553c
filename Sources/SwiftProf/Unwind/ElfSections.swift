// Section headers, for what only sections name: Go's .gopclntab and the data
// section that holds the runtime's module table. Stripped binaries keep them.

struct ElfSection: Equatable {
    let name: String
    let address: UInt64
    let offset: Int
    let size: Int
    /// SHT_NOBITS (.bss): no bytes in the file.
    let hasBytes: Bool

    func contains(_ vaddr: UInt64) -> Bool { vaddr >= address && vaddr - address < UInt64(size) }
}

extension ElfImage {
    func sections() -> [ElfSection] {
        guard let shoff = source.load(UInt64.self, at: 40), let entrySize = source.load(UInt16.self, at: 58),
              let count = source.load(UInt16.self, at: 60), let namesIndex = source.load(UInt16.self, at: 62),
              entrySize >= 64, shoff > 0, shoff < UInt64(source.count), namesIndex < count else { return [] }
        // Every number here is the file's to choose: offsets and sizes are checked
        // against the file before they become Ints (a fuzzed header trapped here).
        func header(_ index: Int) -> (nameOffset: UInt32, type: UInt32, address: UInt64, offset: UInt64, size: UInt64)? {
            let at = Int(shoff) + index * Int(entrySize)
            guard let name = source.load(UInt32.self, at: at), let type = source.load(UInt32.self, at: at + 4),
                  let address = source.load(UInt64.self, at: at + 16), let offset = source.load(UInt64.self, at: at + 24),
                  let size = source.load(UInt64.self, at: at + 32) else { return nil }
            return (name, type, address, offset, size)
        }
        guard let names = header(Int(namesIndex)), names.offset < UInt64(source.count) else { return [] }
        var result: [ElfSection] = []
        for index in 1..<Int(count) {
            guard let section = header(index), section.offset <= UInt64(source.count), section.size <= UInt64(Int.max) else { continue }
            let hasBytes = section.type != 8
            guard !hasBytes || section.size <= UInt64(source.count) - section.offset else { continue }
            result.append(ElfSection(name: cString(at: Int(names.offset) + Int(section.nameOffset)), address: section.address,
                                     offset: Int(section.offset), size: Int(section.size), hasBytes: hasBytes))
        }
        return result
    }

    /// The NUL-terminated string at a file offset ("" past the end), at most 4 KiB.
    func cString(at offset: Int) -> String {
        var bytes: [UInt8] = []
        var at = offset
        while bytes.count < 4096, let byte = source.load(UInt8.self, at: at), byte != 0 {
            bytes.append(byte)
            at += 1
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
