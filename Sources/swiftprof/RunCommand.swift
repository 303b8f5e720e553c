// `swiftprof run -- CMD ARGS...`: start a command and sample it until it exits
// (or --duration ends, which ends the command too unless --keep-running).
import ArgumentParser
import Glibc
import SwiftProf

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Start a command and sample it until it exits, then print the profile.",
        discussion: "The command keeps swiftprof's standard input and output; the profile goes to -o FILE or, after the command's output, to standard output. When --duration ends the sampling first, the command is sent SIGTERM and waited for (--keep-running leaves it running instead). SIGTERM and SIGHUP sent to swiftprof are passed on to the command; Ctrl-C reaches both from the terminal."
    )

    @Flag(name: .long, help: "When --duration ends the sampling before the command exits, leave the command running (default: end it with SIGTERM).")
    var keepRunning = false

    @Flag(name: .long, inversion: .prefixedNo, help: "Sample the processes the command starts too, and theirs, from the tick after each is born (a make's compilers, a server's workers); each record then says its process. With --no-follow-children only the command's own process.")
    var followChildren = true

    @OptionGroup(title: "Sampling")
    var sampling: SamplingOptionGroup

    @OptionGroup(title: "Output")
    var output: OutputOptions

    @OptionGroup(title: "Capture")
    var capture: CaptureOptionGroup

    @OptionGroup(title: "Symbols")
    var symbols: SymbolOptionGroup

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
        // With no signal blocked, whatever swiftprof's parent blocked: SIGTERM passed on
        // (or sent when --duration ends) must reach it. Ignored signals stay ignored (nohup).
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
        let rc = posix_spawnp(&pid, command[0], nil, &attributes, arguments, environ)
        guard rc == 0 else {
            // As a shell says it: 127 not found, 126 found but not executable.
            warn("cannot run \(command[0]): \(String(cString: strerror(rc)))")
            throw rc == ENOENT ? ExitStatus.commandNotFound : ExitStatus.commandNotExecutable
        }
        var status: Int32 = 0
        let title = (["swiftprof run"] + command).joined(separator: " ")
        let result: SamplingResult
        do { result = try sampling.run(pid: pid, capture: capture, symbols: symbols, output: output, command: title,
                                       followChildren: followChildren) }
        catch let error as TargetError {
            // A command that ends at once is gone (a zombie) before the first sample: its
            // profile is empty, and that is no failure of swiftprof's (a command that lives
            // a little longer gets a sample or two; either way the status is the same).
            var ended = waitpid(pid, &status, WNOHANG) == pid
            if !ended, let reaped = ReapedChildren.take(pid: pid) { (status, ended) = (reaped, true) }
            if ended {
                var document = ProfileDocument(pid: pid, records: [])
                document.command = title
                document.comments = ["samples: 0: \(command[0]) \(describe(status)) before the first tick"]
                try output.emit(try output.render(document))
                warn("\(command[0]) \(describe(status)) before it could be sampled")
                return
            }
            warn(error.description)
            throw ExitStatus.cannotProfile
        }
        if !result.targetExited {
            let signal = StopSignals.received.load(ordering: .relaxed)
            if signal == SIGTERM || signal == SIGHUP {
                // Sent to swiftprof alone (a terminal's Ctrl-C reaches the command itself).
                kill(pid, signal)
            } else if signal == 0 {
                // --duration ended the sampling.
                if keepRunning {
                    warn("left running: \(command.joined(separator: " ")) (pid \(pid))")
                    return
                }
                kill(pid, SIGTERM)
            }
        }
        var waited: Int32
        repeat { waited = waitpid(pid, &status, 0) } while waited < 0 && errno == EINTR
        // Already reaped by a ptrace wait of the sampler (its last thread's exit).
        if waited < 0, let reaped = ReapedChildren.take(pid: pid) { status = reaped }
        warn("\(command[0]) \(describe(status))")
    }

    private func describe(_ status: Int32) -> String {
        (status & 0x7f) == 0 ? "exited with status \((status >> 8) & 0xff)" : "was killed by signal \(status & 0x7f)"
    }
}
