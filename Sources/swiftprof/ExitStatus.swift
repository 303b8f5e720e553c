// The documented exit statuses, in one place.
import ArgumentParser
import Glibc

enum ExitStatus {
    static let complete = ExitCode(0)
    static let partial = ExitCode(1)
    static let cannotProfile = ExitCode(2)
    // 64 (EX_USAGE) is what ArgumentParser returns for validation errors.
}

/// One line on stderr, prefixed like every Unix tool's.
func warn(_ message: String) {
    _ = writeAll(STDERR_FILENO, "swiftprof: \(message)\n")
}

/// Writes all of `text`, retrying short writes; false on error (errno set).
func writeAll(_ fd: Int32, _ text: String) -> Bool {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            return false
        }
        bytes = bytes.dropFirst(n)
    }
    return true
}
