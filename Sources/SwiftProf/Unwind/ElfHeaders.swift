// An ELF file's program and section headers, read by libelf rather than by hand:
// a target chooses its binaries, and libelf checks every offset and count in them
// against the file. From the file's descriptor when there is one (libelf maps it
// itself), else from a copy of the bytes (the vDSO, copied out of the target).
import CSwiftProf
import Glibc

struct ElfHeaders {
    let segments: [ElfSegment]
    /// The sections whose bytes lie in the file (or that have none, .bss).
    let sections: [ElfSection]

    /// nil when the bytes are not a 64-bit little-endian ELF file libelf can read.
    static func read(_ source: any ByteSource) -> ElfHeaders? {
        var raw = sp_elf_headers()
        let rc: Int32
        switch source {
        case let file as MappedFile:
            let fd = file.duplicateDescriptor()
            guard fd >= 0 else { return nil }
            defer { close(fd) }
            rc = sp_elf_read_headers(fd, nil, 0, &raw)
        case let copy as CopiedBytes:
            rc = copy.storage.withUnsafeBytes { sp_elf_read_headers(-1, $0.baseAddress, $0.count, &raw) }
        default:
            return nil
        }
        guard rc == 0 else { return nil }
        defer { sp_elf_headers_free(&raw) }
        let segments = (0..<raw.segment_count).map { index in
            let segment = raw.segments[index]
            return ElfSegment(type: segment.type, flags: segment.flags, offset: segment.offset, vaddr: segment.vaddr,
                              fileSize: segment.file_size, memorySize: segment.memory_size)
        }
        let size = UInt64(source.count)
        let sections: [ElfSection] = (0..<raw.section_count).compactMap { index in
            let section = raw.sections[index]
            let hasBytes = section.type != 8  // SHT_NOBITS
            guard section.offset <= size, section.size <= UInt64(Int.max),
                  !hasBytes || section.size <= size - section.offset else { return nil }
            let name = withUnsafeBytes(of: section.name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            return ElfSection(name: name, address: section.address, offset: Int(section.offset), size: Int(section.size),
                              hasBytes: hasBytes)
        }
        return ElfHeaders(segments: segments, sections: sections)
    }
}
