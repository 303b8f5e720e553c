// Sections, for what only sections name: Go's .gopclntab and the data section
// that holds the runtime's module table. Stripped binaries keep them. They are
// read by libelf with the program headers (ElfHeaders).

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
    func sections() -> [ElfSection] { sectionTable }

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
