// The command line: one small file a command; the library never sees ArgumentParser.
import ArgumentParser
import Glibc
import SwiftProf

@main
struct SwiftProfCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swiftprof",
        // The exit statuses come from one table (ExitStatus.table), also the man page's.
        abstract: "Show what every thread of a running native process is doing.",
        discussion: """
            swiftprof copies the registers and stacks of a process's threads (blocked ones without \
            a stop, from /proc; running ones stopped with ptrace for as short a time as it can), \
            then unwinds the copies with libunwind and names every frame with libdw. Output follows \
            Go's goroutine profile text, so it pipes into diff, sort and go tool pprof.
            """ + "\n\n" + ExitStatus.summary,
        version: SwiftProfVersion.current,
        subcommands: [DumpCommand.self, AttachCommand.self, RunCommand.self, TopCommand.self, WatchCommand.self, DiffCommand.self,
                      ServeCommand.self, ExitStatusCommand.self]
    )

    static func main() {
        // A negative number reads as an option ("-1") and would be reported as a missing
        // PID or value: said as what it is instead.
        if let message = negativeNumber(in: Array(CommandLine.arguments.dropFirst())) {
            warn(message)
            Glibc.exit(64)
        }
        main(nil)
    }

    /// What is wrong with a "-N" token of dump, attach, top or serve: none of their PIDs or
    /// values can be negative.
    static func negativeNumber(in arguments: [String]) -> String? {
        guard let command = arguments.first, ["dump", "attach", "top", "serve", "watch"].contains(command) else { return nil }
        var previous = command
        for argument in arguments.dropFirst() {
            if argument == "--" { return nil }
            if argument.count > 1, argument.hasPrefix("-"), argument.dropFirst().allSatisfy({ $0.isNumber || $0 == "." }) {
                return previous.hasPrefix("--") && !flags.contains(previous)
                    ? "\(previous) takes a value more than 0, not \(argument)"
                    : "PID must be a positive process id, not \(argument)"
            }
            previous = argument
        }
        return nil
    }

    /// The options of dump, attach and top that take no value.
    private static let flags: Set<String> = [
        "--consistent", "--goroutines", "--tasks", "--stats", "--progress", "--no-perf", "--idle", "--memory-map",
        "--blocked-time", "--markdown", "--thread-names", "--merge-threads", "--kernel", "--no-kernel", "--no-inline",
        "--no-demangle", "--hide-thunks", "--short-names",
    ]
}
