// The bytes of a core file: the file mapped read-only, or, for a compressed core
// (systemd-coredump's zstd, xz, lz4), its inflated copy in memory: never
// unpacked to disk.
import CSwiftProf
import Glibc

/// Why a core cannot be read, in one line; `kind` picks the exit status.
public struct CoreError: Error, Equatable, CustomStringConvertible {
    public enum Kind: Sendable {
        /// The file (or a file it needs) cannot be found or read (EX_NOINPUT).
        case unreadable
        /// Not a core swiftprof reads: not ELF, not a core, another machine, cut short (EX_DATAERR).
        case malformed
    }

    public let kind: Kind
    public let description: String

    init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }
}

/// One ELF note of a core: its type, owner and where its description lies in the file.
struct CoreNote {
    let type: UInt32
    let name: String
    let descriptionOffset: UInt64
    let descriptionSize: UInt64
}

final class CoreBytes: @unchecked Sendable {
    let base: UnsafeRawPointer
    let count: Int
    /// "zstd", "xz", "lz4", or nil for a core read as it is.
    let compression: String?
    private let inflated: Bool

    /// The most an inflated core may take: a small compressed file must not fill memory.
    static let inflatedLimit = 64 << 30

    init(path: String) throws(CoreError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CoreError(.unreadable, "\(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw CoreError(.unreadable, "\(path): not a regular file")
        }
        guard info.st_size > 0 else { throw CoreError(.malformed, "\(path): empty, not a core") }
        guard let mapped = mmap(nil, Int(info.st_size), PROT_READ, MAP_PRIVATE, fd, 0), mapped != MAP_FAILED else {
            throw CoreError(.unreadable, "\(path): \(String(cString: strerror(errno)))")
        }
        let size = Int(info.st_size)
        let kind = sp_core_compression(mapped, size)
        guard kind != 0 else {
            base = UnsafeRawPointer(mapped)
            count = size
            compression = nil
            inflated = false
            return
        }
        defer { munmap(mapped, size) }
        let name = [SP_CORE_ZSTD: "zstd", SP_CORE_XZ: "xz", SP_CORE_LZ4: "lz4"][Int(kind)] ?? "compressed"
        var bytes: UnsafeMutableRawPointer?
        var inflatedSize = 0
        let rc = sp_core_inflate(mapped, size, CoreBytes.inflatedLimit, &bytes, &inflatedSize)
        guard rc == 0, let bytes else {
            throw CoreError(.malformed, "\(path): \(CoreBytes.problem(Int(rc), compression: name))")
        }
        base = UnsafeRawPointer(bytes)
        count = inflatedSize
        compression = name
        inflated = true
    }

    deinit {
        if inflated { sp_core_inflated_free(UnsafeMutableRawPointer(mutating: base), count) } else {
            munmap(UnsafeMutableRawPointer(mutating: base), count)
        }
    }

    static func problem(_ status: Int, compression: String? = nil) -> String {
        let stream = compression.map { "its \($0) stream" } ?? "it"
        switch status {
        case SP_CORE_NOT_ELF: return "not a core file (not ELF, nor zstd, xz or lz4)"
        case SP_CORE_NOT_CORE: return "an ELF file but not a core (an executable or a library?)"
        case SP_CORE_OTHER_ARCHITECTURE: return "a core of another architecture (swiftprof reads x86_64 cores)"
        case SP_CORE_TRUNCATED: return "truncated: \(stream) ends early"
        case SP_CORE_CORRUPT: return "corrupt: \(stream) does not decode"
        case SP_CORE_TOO_LARGE: return "inflated, it would take more than \(inflatedLimit >> 30) GiB"
        default: return "unreadable (status \(status))"
        }
    }

    /// The core's PT_LOAD and PT_NOTE segments and its notes, as libelf reads them.
    func headers(path: String) throws(CoreError) -> (segments: [sp_core_segment], notes: [CoreNote]) {
        var raw = sp_core_headers()
        let rc = sp_core_read_headers(base, count, &raw)
        guard rc == 0 else { throw CoreError(.malformed, "\(path): \(CoreBytes.problem(Int(rc)))") }
        defer { sp_core_headers_free(&raw) }
        let notes = (0..<raw.note_count).map { index in
            let note = raw.notes[index]
            return CoreNote(type: note.type, name: withUnsafeBytes(of: note.name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) },
                            descriptionOffset: note.desc_offset, descriptionSize: note.desc_size)
        }
        return ((0..<raw.segment_count).map { raw.segments[$0] }, notes)
    }

    /// `length` bytes at `offset`, copied; nil when the file does not hold them.
    func bytes(at offset: UInt64, count length: Int) -> [UInt8]? {
        guard length >= 0, offset <= UInt64(count), UInt64(length) <= UInt64(count) - offset else { return nil }
        return Array(UnsafeRawBufferPointer(start: base + Int(offset), count: length))
    }

    /// Copies `buffer.count` bytes from `offset` (the caller checked the range).
    func copy(from offset: Int, into buffer: UnsafeMutableRawBufferPointer) {
        buffer.copyMemory(from: UnsafeRawBufferPointer(start: base + offset, count: buffer.count))
    }
}
