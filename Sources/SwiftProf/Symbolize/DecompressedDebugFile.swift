// Separate debug files ship with compressed sections (libc's: 3.4 MiB of zlib),
// and libdw inflates every one of them each time it opens the file: measured,
// half of the CPU time of a snapshot of a C program. They never change for a
// build-id, so the inflated copy is kept in ~/.cache/swiftprof/debug/BUILD-ID.debug
// (perf keeps ~/.debug the same way) and later runs read it directly.
//
// The copy is the original file unchanged, followed by the inflated sections and
// a new section header table pointing at them: program headers and notes (the
// build-id libdwfl checks) stay where they were. libelf reads the headers and
// inflates the sections (shim: sp_elf_write_inflated); nothing is parsed by hand.
import CSwiftProf
import Glibc

enum DecompressedDebugFile {
    /// The inflated copy of the debug file at `path` (opened, and its path), or nil
    /// when nothing in it is compressed or it cannot be made.
    static func open(_ path: String, buildID: String) -> (descriptor: Int32, path: String)? {
        guard let directory = CacheDirectory.path("debug"), buildID.allSatisfy(\.isHexDigit), !buildID.isEmpty else { return nil }
        let cached = directory + "/" + buildID + ".debug"
        // Only for a file that exists now: a copy is never used in place of nothing.
        guard access(path, R_OK) == 0 else { return nil }
        let fd = Glibc.open(cached, O_RDONLY | O_CLOEXEC)
        if fd >= 0 { return (fd, cached) }
        let source = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard source >= 0 else { return nil }
        defer { close(source) }
        // 1: written; 0: nothing compressed (no copy is kept); -1: not an ELF file libelf reads.
        guard CacheDirectory.replace(cached, mode: 0o644, { sp_elf_write_inflated(source, $0) == 1 }) else { return nil }
        let written = Glibc.open(cached, O_RDONLY | O_CLOEXEC)
        return written >= 0 ? (written, cached) : nil
    }
}
