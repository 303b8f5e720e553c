// The documented exit statuses, in one place.
import ArgumentParser
import Glibc
import SwiftProf

enum ExitStatus {
    static let complete = ExitCode(0)
    static let partial = ExitCode(1)
    static let cannotProfile = ExitCode(2)
    /// dump --fail-on-deadlock: threads wait for each other in a cycle, or a Swift pool is starved.
    static let deadlock = ExitCode(3)
    // 64 (EX_USAGE) is what ArgumentParser returns for validation errors.
    /// An input file that is not a profile swiftprof reads (EX_DATAERR).
    static let malformedInput = ExitCode(65)
    /// An input file that does not exist or cannot be read (EX_NOINPUT).
    static let noInput = ExitCode(66)
    /// The output file cannot be created (EX_CANTCREAT): checked before any work.
    static let cannotCreateOutput = ExitCode(73)
    /// Writing the output failed (EX_IOERR): a full disk, a closed terminal.
    static let writeFailed = ExitCode(74)
    /// `run`: the command exists but cannot be executed, as shells say it.
    static let commandNotExecutable = ExitCode(126)
    /// `run`: the command is not found, as shells say it.
    static let commandNotFound = ExitCode(127)
}

extension ExitStatus {
    /// Every status and what it means: the one source of the help text and of the man
    /// page's EXIT STATUS (`swiftprof exit-status --mdoc`, run by `make man`).
    static let table: [(status: Int32, meaning: String)] = [
        (0, "done: a complete snapshot or profile (run: also when the command ended before its first sample, an empty profile, the command's own status on stderr), and for diff: no stack changed"),
        (1, "printed but partial (stderr says which threads and why); for diff: some stacks changed, as diff(1); for attach --push: an upload failed after its retries (the profile is still written); for serve: the process ended"),
        (2, "the process cannot be profiled (one line says why)"),
        (3, "dump --fail-on-deadlock: threads are deadlocked, or a Swift program's pool has been starved for a second (the snapshot is printed; stderr names each cycle); watch: an --until condition held (stderr says which; the files are written)"),
        (64, "bad usage"),
        (65, "an input file that is not a profile"),
        (66, "an input file that cannot be read"),
        (73, "the output file cannot be created (checked before any work)"),
        (74, "writing the output failed"),
        (126, "run: the command cannot be executed"),
        (127, "run: the command is not found"),
    ]

    static var summary: String {
        "Exit status: " + table.map { "\($0.status) \($0.meaning)" }.joined(separator: "; ") + "."
    }

    /// The man page's EXIT STATUS section body, in mdoc.
    static var mdoc: String {
        ".Bl -tag -width 6n\n" + table.map { ".It \($0.status)\n\($0.meaning)\n" }.joined() + ".El\n"
    }
}

/// `swiftprof exit-status [--mdoc]`: the table, for scripts and for `make man`.
struct ExitStatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "exit-status",
                                                    abstract: "Print what each exit status of swiftprof means, one a line.")

    @Flag(name: .long, help: "As mdoc, the man page's EXIT STATUS section.")
    var mdoc = false

    func run() throws {
        _ = writeAll(STDOUT_FILENO, mdoc ? ExitStatus.mdoc : ExitStatus.table.map { "\($0.status)\t\($0.meaning)\n" }.joined())
    }
}

/// The check every command that takes a PID makes (ArgumentParser turns it into status 64).
func validateProcessID(_ pid: Int32) throws {
    guard pid > 0 else { throw ValidationError("PID must be a positive process id, not \(pid)") }
}

/// One line on stderr, prefixed like every Unix tool's.
func warn(_ message: String) {
    _ = writeAll(STDERR_FILENO, "swiftprof: \(message)\n")
}

/// Writes all of `text`, retrying short writes; false on error (errno set).
func writeAll(_ fd: Int32, _ text: String) -> Bool { writeAll(fd, Array(text.utf8)) }

func writeAll(_ fd: Int32, _ data: [UInt8]) -> Bool {
    var bytes = data[...]
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

/// One line a reason: "thread 12 not captured: ..." or "3 threads (12, 13, 14) not captured: ...".
/// What was not captured, as comment lines of the profile itself (stderr says it too):
/// a partial profile says so where it is read, not only where it was made.
func failureComments(_ failures: [SwiftProf.ThreadFailure]) -> [String] {
    var order: [String] = []
    var counts: [String: Int] = [:]
    var comments: [String] = []
    for failure in failures {
        if failure.tid == 0 {
            comments.append("not read: \(failure.reason)")
            continue
        }
        if counts[failure.reason] == nil { order.append(failure.reason) }
        counts[failure.reason, default: 0] += 1
    }
    // The target's bytes may be in a reason (a name): one line each, whatever they hold.
    return order.map { "not captured: \(counts[$0]!) \(counts[$0]! == 1 ? "thread" : "threads"): \(printable($0))" }
        + comments.map(printable)
}

func reportFailures(_ failures: [SwiftProf.ThreadFailure]) {
    var order: [String] = []
    var tids: [String: [Int32]] = [:]
    for failure in failures {
        // Not a thread's: a part of the process left unread (goroutines past --stop-timeout).
        if failure.tid == 0 {
            warn(failure.reason)
            continue
        }
        if tids[failure.reason] == nil { order.append(failure.reason) }
        tids[failure.reason, default: []].append(failure.tid)
    }
    for reason in order {
        let list = tids[reason]!
        if list.count == 1 {
            warn("thread \(list[0]) not captured: \(reason)")
        } else {
            let shown = list.prefix(5).map(String.init).joined(separator: ", ") + (list.count > 5 ? ", ..." : "")
            warn("\(list.count) threads (\(shown)) not captured: \(reason)")
        }
    }
}
