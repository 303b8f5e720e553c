// Separate debug files ship with compressed sections (libc's: 3.4 MiB of zlib),
// and libdw inflates every one of them each time it opens the file: measured,
// half of the CPU time of a snapshot of a C program. They never change for a
// build-id, so the inflated copy is kept in ~/.cache/swiftprof/debug/BUILD-ID.debug
// (perf keeps ~/.debug the same way) and later runs read it directly.
//
// The copy is the original file unchanged, followed by the inflated sections and
// a new section header table pointing at them: program headers and notes (the
// build-id libdwfl checks) stay where they were.
import CSwiftProf
import Glibc

enum DecompressedDebugFile {
    private static let compressedFlag: UInt64 = 0x800  // SHF_COMPRESSED
    private static let zlib: UInt32 = 1  // ELFCOMPRESS_ZLIB

    /// The inflated copy of the debug file at `path` (opened, and its path), or nil
    /// when nothing in it is compressed or it cannot be made.
    static func open(_ path: String, buildID: String) -> (descriptor: Int32, path: String)? {
        guard let directory = CacheDirectory.path("debug"), buildID.allSatisfy(\.isHexDigit), !buildID.isEmpty else { return nil }
        let cached = directory + "/" + buildID + ".debug"
        // Only for a file that exists now: a copy is never used in place of nothing.
        guard access(path, R_OK) == 0 else { return nil }
        let fd = Glibc.open(cached, O_RDONLY | O_CLOEXEC)
        if fd >= 0 { return (fd, cached) }
        guard let source = MappedFile(path: path), let plan = plan(source) else { return nil }
        guard CacheDirectory.replace(cached, mode: 0o644, { write(plan, from: source, to: $0) }) else { return nil }
        let written = Glibc.open(cached, O_RDONLY | O_CLOEXEC)
        return written >= 0 ? (written, cached) : nil
    }

    private struct Section {
        var header: [UInt8]
        let headerOffset: Int
        /// For a compressed section: where its zlib stream is, and how big it inflates.
        var stream: (offset: Int, count: Int, size: Int, alignment: Int)?
    }

    private struct Plan {
        var sections: [Section]
        let headerSize: Int
    }

    /// The section headers, and which sections to inflate; nil when none is compressed.
    private static func plan(_ file: MappedFile) -> Plan? {
        guard file.load(UInt32.self, at: 0) == 0x464c_457f, file.load(UInt8.self, at: 4) == 2,
              let shoff = file.load(UInt64.self, at: 40), let entrySize = file.load(UInt16.self, at: 58),
              let count = file.load(UInt16.self, at: 60), entrySize >= 64, count > 0, shoff < UInt64(file.count) else { return nil }
        // The file's numbers (a container's files are its own to choose) are checked
        // against the file before they become Ints.
        let fileSize = UInt64(file.count)
        var sections: [Section] = []
        for index in 0..<Int(count) {
            let at = Int(shoff) + index * Int(entrySize)
            guard let header = file.withBytes(at: at, count: Int(entrySize), { Array($0) }),
                  let flags = file.load(UInt64.self, at: at + 8), let offset = file.load(UInt64.self, at: at + 24),
                  let size = file.load(UInt64.self, at: at + 32) else { return nil }
            var section = Section(header: header, headerOffset: at)
            if flags & compressedFlag != 0, offset < fileSize, size <= fileSize - offset,
               file.load(UInt32.self, at: Int(offset)) == zlib,
               let inflated = file.load(UInt64.self, at: Int(offset) + 8), let alignment = file.load(UInt64.self, at: Int(offset) + 16),
               size > 24, inflated < 1 << 32, alignment <= 1 << 20 {
                section.stream = (Int(offset) + 24, Int(size) - 24, Int(inflated), max(1, Int(alignment)))
            }
            sections.append(section)
        }
        guard sections.contains(where: { $0.stream != nil }) else { return nil }
        return Plan(sections: sections, headerSize: Int(entrySize))
    }

    private static func write(_ plan: Plan, from file: MappedFile, to fd: Int32) -> Bool {
        guard file.withBytes(at: 0, count: file.count, { writeFully(fd, $0) }) == true else { return false }
        var position = file.count
        var sections = plan.sections
        for index in sections.indices {
            guard let stream = sections[index].stream else { continue }
            let padding = (stream.alignment - position % stream.alignment) % stream.alignment
            var bytes = [UInt8](repeating: 0, count: padding + stream.size)
            let inflated = file.withBytes(at: stream.offset, count: stream.count) { input in
                bytes.withUnsafeMutableBytes { output in
                    sp_inflate_zlib(input.baseAddress!.assumingMemoryBound(to: UInt8.self), input.count,
                                    output.baseAddress!.assumingMemoryBound(to: UInt8.self) + padding, stream.size) == 0
                }
            }
            guard inflated == true, bytes.withUnsafeBytes({ writeFully(fd, $0) }) else { return false }
            position += padding
            // sh_flags without SHF_COMPRESSED, sh_offset, sh_size, sh_addralign.
            set(&sections[index].header, at: 8, to: littleEndianWord(sections[index].header, at: 8) & ~compressedFlag)
            set(&sections[index].header, at: 24, to: UInt64(position))
            set(&sections[index].header, at: 32, to: UInt64(stream.size))
            set(&sections[index].header, at: 48, to: UInt64(stream.alignment))
            position += stream.size
        }
        let padding = (8 - position % 8) % 8
        var table = [UInt8](repeating: 0, count: padding)
        for section in sections { table += section.header }
        guard table.withUnsafeBytes({ writeFully(fd, $0) }) else { return false }
        // e_shoff, the only change to the ELF header.
        var shoff = UInt64(position + padding).littleEndian
        return withUnsafeBytes(of: &shoff) { pwrite(fd, $0.baseAddress, 8, 40) } == 8
    }

    private static func set(_ bytes: inout [UInt8], at offset: Int, to value: UInt64) {
        for index in 0..<8 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
    }
}
