// ~/.cache/swiftprof (or $XDG_CACHE_HOME/swiftprof), made private to the user,
// where what does not change is kept between runs, as perf keeps ~/.debug.
import Glibc

enum CacheDirectory {
    /// The directory, with `subdirectory` inside it, created when missing; nil
    /// when there is no home to put it in.
    static func path(_ subdirectory: String? = nil) -> String? {
        let base: String
        if let xdg = getenv("XDG_CACHE_HOME").map({ String(cString: $0) }), xdg.hasPrefix("/") {
            base = xdg
        } else if let home = getenv("HOME").map({ String(cString: $0) }), home.hasPrefix("/") {
            base = home + "/.cache"
        } else {
            return nil
        }
        var directory = base + "/swiftprof"
        mkdir(base, 0o700)
        mkdir(directory, 0o700)
        if let subdirectory {
            directory += "/" + subdirectory
            mkdir(directory, 0o700)
        }
        return directory
    }

    /// Writes `write`'s output to a temporary file beside `file` and renames it
    /// into place, so a reader never sees half of it. false when it failed.
    static func replace(_ file: String, mode: mode_t, _ write: (Int32) -> Bool) -> Bool {
        let temporary = file + ".\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { return false }
        let written = write(fd)
        close(fd)
        guard written, rename(temporary, file) == 0 else {
            unlink(temporary)
            return false
        }
        return true
    }
}

/// Writes all of `bytes`, through short writes and EINTR.
func writeFully(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
    var done = 0
    while done < bytes.count {
        let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { return false }
        done += n
    }
    return true
}
