// The documented exit statuses, in one place.
import ArgumentParser
import Foundation

enum ExitStatus {
    static let complete = ExitCode(0)
    static let partial = ExitCode(1)
    static let cannotProfile = ExitCode(2)
    // 64 (EX_USAGE) is what ArgumentParser returns for validation errors.
}

/// One line on stderr, prefixed like every Unix tool's.
func warn(_ message: String) {
    FileHandle.standardError.write(Data("swiftprof: \(message)\n".utf8))
}
