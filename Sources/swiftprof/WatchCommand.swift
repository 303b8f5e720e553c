// `swiftprof watch PID --until CONDITION -o DIR`: watch a process cheaply and,
// when a hang forms (a deadlock, a thread stalled on a lock, CPU held high),
// write what it looks like and what led to it, then exit 3.
import ArgumentParser
import Glibc
import SwiftProf

/// One `--until` condition: deadlock, stall=TIME or cpu=PERCENT.
enum WatchCondition: ExpressibleByArgument {
    case deadlock
    /// Nanoseconds.
    case stall(UInt64)
    case cpu(Double)

    init?(argument: String) {
        if argument == "deadlock" {
            self = .deadlock
        } else if argument.hasPrefix("stall="), let bound = Duration(argument: String(argument.dropFirst(6))) {
            self = .stall(bound.nanoseconds)
        } else if argument.hasPrefix("cpu="), let percent = Double(argument.dropFirst(4).filter { $0 != "%" }), percent > 0,
                  percent <= 100_000 {
            self = .cpu(percent)
        } else {
            return nil
        }
    }
}

struct WatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Watch a process cheaply and, when a hang forms, write what it looks like and what led to it.",
        discussion: """
            Samples every thread on the wall clock at a low rate (blocked threads are reused, not \
            read again) and keeps the last --window of ticks. Conditions are looked at once a second: \
            deadlock (a cycle of lock waits, as dump names it, or a Swift program's cooperative pool \
            starved: every pool thread blocked outside an await for a second), stall=TIME (a thread blocked on a \
            mutex, read-write lock or file lock for longer than TIME), cpu=PERCENT (the process's CPU \
            over 5 s above PERCENT of one core). When one holds, DIR gets snapshot.txt (a dump, with \
            its wait, deadlock and starvation lines), window.pb.gz (the window's wall profile, for go tool pprof) \
            and window.trace.json (its timeline, for Perfetto); what fired is said on stderr and the \
            exit status is 3. The end of the process first: status 0; Ctrl-C or SIGTERM: status 0.
            """
    )

    @Argument(help: ArgumentHelp("The process to watch.", valueName: "PID"))
    var pid: Int32

    @Option(name: .long, help: ArgumentHelp("What ends the watch: deadlock, stall=TIME (2s), cpu=PERCENT (80); repeat for several.", valueName: "CONDITION"))
    var until: [WatchCondition] = []

    @Option(name: .long, parsing: .unconditional,
            help: ArgumentHelp("How much of the past to keep and write (10s, 1m).", valueName: "TIME"),
            transform: { text in
                guard let window = Duration(argument: text), window.nanoseconds >= 1_000_000_000 else {
                    throw ValidationError("--window takes a time of at least 1s (30s, 2m)")
                }
                return window
            })
    var window: Duration = Duration(argument: "30s")!

    @Option(name: .long, help: ArgumentHelp("Samples a second.", valueName: "HZ"))
    var rate: Double = 10

    @Option(name: [.customShort("o"), .long], help: ArgumentHelp("The directory to write into when a condition holds (made if missing).", valueName: "DIR"))
    var output: String

    @OptionGroup(title: "Capture")
    var capture: CaptureOptionGroup

    @OptionGroup(title: "Symbols")
    var symbols: SymbolOptionGroup

    func validate() throws {
        try validateProcessID(pid)
        guard !until.isEmpty else { throw ValidationError("give --until deadlock, stall=TIME or cpu=PERCENT") }
        guard rate > 0 && rate <= 1_000 else { throw ValidationError("--rate must be more than 0 and at most 1000 samples a second") }
    }

    func run() throws {
        do { try Profiler.checkTarget(pid: pid) } catch {
            warn(error.description)
            throw ExitStatus.cannotProfile
        }
        try makeDirectory()
        var conditions = WatchConditions()
        for condition in until {
            switch condition {
            case .deadlock: conditions.deadlock = true
            case .stall(let bound): conditions.stallNanoseconds = bound
            case .cpu(let percent): conditions.cpuCores = percent / 100
            }
        }
        var options = SamplingOptions()
        options.snapshot = capture.snapshotOptions(symbols)
        options.rate = rate
        options.mode = .wall
        StopSignals.install()
        let said = "swiftprof: watching process \(pid) (\(NameQuoting.quoted(threadName(pid: pid, tid: pid)))) until "
            + until.map(\.description).joined(separator: " or ") + "; window \(decimal(Double(window.nanoseconds) / 1e9, places: 0)) s at "
            + "\(decimal(rate, places: rate == rate.rounded() ? 0 : 1)) Hz\n"
        let watched: Result<WatchOutcome, TargetError> = Result { () throws(TargetError) -> WatchOutcome in
            try Profiler.watch(pid: pid, options: options, windowNanoseconds: window.nanoseconds, conditions: conditions,
                               shouldStop: { StopSignals.requested }, onReady: { _ = writeAll(STDERR_FILENO, said) })
        }
        let outcome: WatchOutcome
        switch watched {
        case .success(let value): outcome = value
        case .failure(let error):
            warn(error.description)
            throw ExitStatus.cannotProfile
        }
        guard let fired = outcome.fired else {
            if outcome.targetExited { warn("process \(pid) exited: nothing held") }
            return
        }
        warn(fired)
        try writeFiles(outcome)
        throw ExitStatus.deadlock
    }

    private func makeDirectory() throws {
        var info = stat()
        if stat(output, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFDIR else {
                warn("cannot write into \(output): not a directory")
                throw ExitStatus.cannotCreateOutput
            }
        } else if mkdir(output, 0o755) != 0 {
            warn("cannot make \(output): \(String(cString: strerror(errno)))")
            throw ExitStatus.cannotCreateOutput
        }
    }

    /// The snapshot now, the window's profile and its timeline.
    private func writeFiles(_ outcome: WatchOutcome) throws {
        var written: [String] = []
        var snapshotOptions = capture.snapshotOptions(symbols)
        snapshotOptions.kernelAddresses = true
        if let (document, _, _, _, _) = try? SnapshotDocuments.threads(pid: pid, options: snapshotOptions, threadIDs: true) {
            var document = document
            document.command = "swiftprof watch \(pid)"
            let text = try OutputOptions.parse(["--format", "pprof-text"]).render(document)
            try writeOutput(text, to: output + "/snapshot.txt")
            written.append("snapshot.txt")
        } else {
            warn("process \(pid) could not be read again for the snapshot")
        }
        var window = outcome.window
        window.command = "swiftprof watch \(pid)"
        let time = PprofProto.SampledTime(mode: .wall, rate: rate, durationNanoseconds: Int64(outcome.windowNanoseconds),
                                          startUnixNanoseconds: outcome.windowStartUnixNanoseconds)
        try writeOutput(PprofProto.write(window, sampledTime: time), to: output + "/window.pb.gz")
        try writeOutput(Array(TraceEventsWriter().write(window).utf8), to: output + "/window.trace.json")
        written += ["window.pb.gz", "window.trace.json"]
        warn("wrote " + written.map { output + "/" + $0 }.joined(separator: ", "))
    }
}

extension WatchCondition: CustomStringConvertible {
    var description: String {
        switch self {
        case .deadlock: "deadlock"
        case .stall(let bound): "stall=\(decimal(Double(bound) / 1e9, places: 1))s"
        case .cpu(let percent): "cpu=\(decimal(percent, places: 0))%"
        }
    }
}
