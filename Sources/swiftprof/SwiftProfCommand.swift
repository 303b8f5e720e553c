// The command line: one small file a command; the library never sees ArgumentParser.
import ArgumentParser
import SwiftProf

@main
struct SwiftProfCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swiftprof",
        // The exit statuses come from one table (ExitStatus.table), also the man page's.
        abstract: "Show what every thread of a running native process is doing.",
        discussion: """
            swiftprof stops the threads of a process with ptrace for as short a time as it can, \
            copies their registers and stacks, lets them go, then unwinds the copies with libunwind \
            and names every frame with libdw. Output follows Go's goroutine profile text, so it \
            pipes into diff, sort and go tool pprof.
            """ + "\n\n" + ExitStatus.summary,
        version: SwiftProfVersion.current,
        subcommands: [DumpCommand.self, AttachCommand.self, RunCommand.self, TopCommand.self, DiffCommand.self,
                      ExitStatusCommand.self]
    )
}
