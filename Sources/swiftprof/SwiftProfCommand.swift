// The command line: one small file a command; the library never sees ArgumentParser.
import ArgumentParser
import SwiftProf

@main
struct SwiftProfCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swiftprof",
        abstract: "Show what every thread of a running native process is doing.",
        discussion: """
            swiftprof stops the threads of a process with ptrace for as short a time as it can, \
            copies their registers and stacks, lets them go, then unwinds the copies with libunwind \
            and names every frame with libdw. Output follows Go's goroutine profile text, so it \
            pipes into diff, sort and go tool pprof.

            Exit status: 0 complete snapshot; 1 printed but partial (the threads and reasons go to \
            stderr); 2 the process cannot be profiled; 64 bad usage; 65 a malformed input file; \
            66 an input file that cannot be read; 73 the output file cannot be created (checked \
            before any work); 74 writing the output failed.
            """,
        version: SwiftProfVersion.current,
        subcommands: [DumpCommand.self, AttachCommand.self, RunCommand.self, TopCommand.self, DiffCommand.self]
    )
}
