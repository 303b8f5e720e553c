// `swiftprof run -- CMD ARGS...`: start a command and sample it until it exits.
import ArgumentParser
import Glibc
import SwiftProf

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Start a command and sample it until it exits, then print the profile.",
        discussion: "The command keeps swiftprof's standard input and output; the profile goes to -o FILE or, after the command's output, to standard output."
    )

    @OptionGroup(title: "Sampling")
    var sampling: SamplingOptionGroup

    @OptionGroup(title: "Output")
    var output: OutputOptions

    @OptionGroup(title: "Capture")
    var capture: CaptureOptionGroup

    @Argument(parsing: .postTerminator, help: ArgumentHelp("The command and its arguments, after --.", valueName: "COMMAND"))
    var command: [String] = []

    func validate() throws {
        guard !command.isEmpty else { throw ValidationError("give the command to run after --") }
    }

    func run() throws {
        // Before the command starts: an unwritable -o would lose its whole run.
        try OutputTarget.check(output.output)
        var pid: pid_t = 0
        let arguments = command.map { strdup($0) } + [nil]
        defer { arguments.forEach { free($0) } }
        let rc = posix_spawnp(&pid, command[0], nil, nil, arguments, environ)
        guard rc == 0 else {
            warn("cannot run \(command[0]): \(String(cString: strerror(rc)))")
            throw ExitStatus.noInput
        }
        var status: Int32 = 0
        let result: SamplingResult
        do { result = try sampling.run(pid: pid, capture: capture, output: output, command: (["swiftprof run"] + command).joined(separator: " ")) }
        catch let error as TargetError {
            // A command that ends at once is gone (a zombie) before the first sample.
            if waitpid(pid, &status, WNOHANG) == pid {
                warn("\(command[0]) \(describe(status)) before it could be sampled")
                throw ExitStatus.partial
            }
            warn(error.description)
            throw ExitStatus.cannotProfile
        }
        if !result.targetExited {
            // Stopped by --duration or a signal: the command goes on; wait for it as its parent.
            warn("still running: \(command.joined(separator: " ")) (pid \(pid)); waiting for it to exit")
        }
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        warn("\(command[0]) \(describe(status))")
    }

    private func describe(_ status: Int32) -> String {
        (status & 0x7f) == 0 ? "exited with status \((status >> 8) & 0xff)" : "was killed by signal \(status & 0x7f)"
    }
}
