// `swiftprof serve PID`: the process's /debug/pprof/, as a Go service has it, so
// that `go tool pprof http://…`, Parca and Pyroscope read a C, C++, Rust or Swift
// service without a change to it. Each request is one capture, one at a time.
// Given several processes (PIDs, a tree, a name, a cgroup, every process), each
// request looks for them again, so a process started since is in the next answer.
import ArgumentParser
import Glibc
import SwiftProf
import SwiftProfHTTP
import SwiftProfServe
import Synchronization

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Answer Go's /debug/pprof/ requests about a running process, for go tool pprof, Parca and Pyroscope.",
        discussion: """
            Routes, as Go's net/http/pprof: /debug/pprof/ (an index), goroutine?debug=0|1|2 (a snapshot: \
            gzipped pprof, text as dump prints it, traceback; view=threads|goroutines|tasks, by default \
            goroutines for a Go program and threads otherwise), profile?seconds=N (a CPU profile: only \
            threads on a CPU are sampled; 30 s by default, at most 600) and wallclock?seconds=N (every \
            thread, blocked or not), block?seconds=N (Go's block profile: the time threads wait for \
            another thread, contentions and delay, sampled on the wall clock), mutex?seconds=N (Go's mutex \
            profile: the time threads wait for a lock, under its holder's stack). One capture at a time: snapshots wait their turn (up to 30 s), a second \
            profile while one is taken gets 503 and Retry-After, as Go refuses a second CPU profile. \
            Nothing of the process is held between requests. The process's end ends serve (status 1); \
            Ctrl-C or SIGTERM end it after letting a capture under way go (status 0). Several processes \
            (PID..., --children, --name, --cgroup, --all) are looked for again at each request, each \
            record marked with its process, as dump and attach mark them; serve then ends when every \
            PID given, or the --children process, has ended; with --name, --cgroup or --all it serves \
            until told to stop.
            """
    )

    @OptionGroup(title: "Processes")
    var targets: ProcessTargets

    @Option(name: .long, help: ArgumentHelp("Where to listen: HOST:PORT, [IPv6]:PORT, or :PORT for every address. Anything but loopback is warned about: a profile shows code, paths and arguments.", valueName: "HOST:PORT"))
    var listen: String = "127.0.0.1:6060"

    @Option(name: .long, help: ArgumentHelp("Answer only requests with Authorization: Bearer TOKEN, TOKEN being FILE's first line (others get 401).", valueName: "FILE"))
    var tokenFile: String?

    @Option(name: .long, help: ArgumentHelp("Samples a second of profile and wallclock.", valueName: "HZ"))
    var rate: Double = 100

    @OptionGroup(title: "Capture")
    var capture: CaptureOptionGroup

    @OptionGroup(title: "Symbols")
    var symbols: SymbolOptionGroup

    func validate() throws {
        guard ListenAddress(listen) != nil else {
            throw ValidationError("--listen takes HOST:PORT, [IPv6]:PORT or :PORT with a port from 0 to 65535, not \"\(listen)\"")
        }
        guard targets.isGiven else { throw ValidationError("give a PID to serve") }
        guard rate > 0 && rate <= 10_000 else { throw ValidationError("--rate must be more than 0 and at most 10000 samples a second") }
    }

    func run() throws {
        let address = ListenAddress(listen)!
        let token = try readToken()
        let served: ServedProcesses
        if let pid = targets.singlePID {
            do { try Profiler.checkTarget(pid: pid) } catch {
                warn(error.description)
                throw ExitStatus.cannotProfile
            }
            served = .one(pid)
        } else {
            _ = try targets.resolve()
            served = .several(targets.selector!, merging: targets.mergeProcesses)
        }
        if !address.isLoopback {
            warn("listening on \(address.host), not loopback: anyone who reaches it sees \(served.possessive) code, paths and arguments"
                 + (token == nil ? " (no --token-file)" : ""))
        }
        StopSignals.install()
        let answers = ServeAnswers(served: served, snapshot: capture.snapshotOptions(symbols), rate: rate)
        let server = PprofServer(settings: .init(host: address.host, port: address.port, token: token),
                                 indexPage: PprofRoute.indexPage(served: served.description, defaultView: answers.defaultView),
                                 capture: answers.answer)
        let port: Int
        do { port = try server.start() } catch {
            warn("cannot listen on \(listen): \(error)")
            throw ExitStatus.cannotProfile
        }
        let shown = address.host.contains(":") ? "[\(address.host)]" : address.host
        warn("serving http://\(shown):\(port)/debug/pprof/ for \(served.description)")
        let exitWatches = served.endsWith.map(ProcessExitWatch.init(pid:))
        while !StopSignals.requested && (exitWatches.isEmpty || !exitWatches.allSatisfy(\.hasExited)) {
            usleep(50_000)
        }
        let exited = !StopSignals.requested
        answers.stop()
        server.stop()
        if exited {
            warn("\(served.endsWith.count == 1 ? "process \(served.endsWith[0]) exited" : "every process exited"): serve ends")
            throw ExitStatus.partial
        }
    }

    private func readToken() throws -> String? {
        guard let tokenFile else { return nil }
        let text: String
        do { text = try readTextFile(tokenFile) } catch {
            warn("cannot read \(tokenFile): \(error)")
            throw ExitStatus.noInput
        }
        let token = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        guard !token.isEmpty, token.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
            warn("\(tokenFile): the first line must be the token, printable ASCII without spaces")
            throw ExitStatus.malformedInput
        }
        return token
    }
}

extension PprofRoute {
    /// The route as a request names it ("profile?seconds=5").
    var requestName: String {
        switch self {
        case .index: "index"
        case .snapshot(let encoding, let view): "goroutine?debug=\(encoding.rawValue)" + (view.map { "&view=\($0.rawValue)" } ?? "")
        case .profile(let seconds, let clock): "\(clock.routeName)?seconds=\(seconds)"
        }
    }
}

/// `--listen`'s value: HOST:PORT, [IPv6]:PORT, or :PORT (every address, as Go reads it).
struct ListenAddress: Equatable {
    let host: String
    let port: Int

    init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (0...65535).contains(port) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        else if host.contains(":") { return nil }
        self.host = host.isEmpty ? "0.0.0.0" : host
        self.port = port
    }

    var isLoopback: Bool { host == "localhost" || host == "::1" || host.hasPrefix("127.") }
}

/// What `serve` was given: one process, as always, or several looked for again at each request.
enum ServedProcesses: Sendable, CustomStringConvertible {
    case one(Int32)
    case several(ProcessSelector, merging: Bool)

    var description: String {
        switch self {
        case .one(let pid): "process \(pid)"
        case .several(let selector, _):
            switch selector {
            case .pids(let pids): "processes " + pids.map(String.init).joined(separator: ", ")
            case .children(let root): "process \(root) and its descendants"
            case .name(let glob): "the processes named \(NameQuoting.quoted(glob))"
            case .cgroup(let path): "the processes of cgroup \(NameQuoting.quoted(path))"
            case .all: "every process swiftprof may trace"
            }
        }
    }

    var possessive: String {
        if case .one = self { return "this process's" }
        return "these processes'"
    }

    /// The processes whose end ends serve: every PID given, a tree's root; none for
    /// a name, a cgroup or every process, which new processes may join.
    var endsWith: [Int32] {
        switch self {
        case .one(let pid): [pid]
        case .several(.pids(let pids), _): pids
        case .several(.children(let root), _): [root]
        case .several: []
        }
    }
}

/// What each route is answered with: a capture of the process, rendered as Go's
/// handler would write it.
final class ServeAnswers: Sendable {
    let served: ServedProcesses
    let snapshot: SnapshotOptions
    let rate: Double
    let defaultView: SnapshotView
    private let stopping = Atomic<Bool>(false)

    init(served: ServedProcesses, snapshot: SnapshotOptions, rate: Double) {
        self.served = served
        self.snapshot = snapshot
        self.rate = rate
        if case .one(let pid) = served, Profiler.isGoProgram(pid: pid) { defaultView = .goroutines } else { defaultView = .threads }
    }

    /// A profile under way ends at its next tick, let go as after any run.
    func stop() { stopping.store(true, ordering: .relaxed) }

    func answer(_ route: PprofRoute) -> PprofReply {
        // Said when a capture starts: what the process is being asked for, and when.
        warn("capturing \(route.requestName)")
        do {
            switch route {
            case .index:
                return .error(500, "the index is not a capture")
            case .snapshot(let encoding, let view):
                return try snapshotReply(encoding, view: view ?? defaultView)
            case .profile(let seconds, let clock):
                return try profileReply(seconds: seconds, clock: clock)
            }
        } catch let error as TargetError {
            // Go answers a profile it cannot take with 500 and the reason.
            return .error(500, "could not profile \(served): \(error.description)")
        } catch {
            return .error(500, "could not profile \(served): \(error)")
        }
    }

    private func snapshotReply(_ encoding: SnapshotEncoding, view: SnapshotView) throws -> PprofReply {
        var options = snapshot
        options.kernelAddresses = encoding != .traceback
        let document: ProfileDocument
        switch (served, view) {
        case (.one(let pid), .threads): document = try SnapshotDocuments.threads(pid: pid, options: options, threadIDs: true).document
        case (.one(let pid), .goroutines): document = try SnapshotDocuments.goroutines(pid: pid, options: options).document
        case (.one(let pid), .tasks): document = try SnapshotDocuments.tasks(pid: pid, options: options).document
        case (.several(let selector, let merging), .threads):
            let pids = try ProcessSelection.resolve(selector).pids
            guard !pids.isEmpty else { return .error(500, "could not profile \(served): none is running") }
            var several = SnapshotDocuments.processes(pids, options: options, threadIDs: true, blockedTime: false, merging: merging)
            several.document.comments += several.unread
            document = several.document
        case (.several, _):
            return .error(400, "view=\(view.rawValue) reads one process; this serve has several: view=threads")
        }
        switch encoding {
        case .pprof:
            return .download(PprofProto.write(document, sampleType: document.profileName), filename: view == .goroutines ? "goroutine" : view.rawValue)
        case .text, .traceback:
            // Written as dump writes them: one renderer for both.
            let output = try OutputOptions.parse(["--format", encoding == .text ? "pprof-text" : "traceback"])
            return PprofReply(status: 200, contentType: "text/plain; charset=utf-8", body: try output.render(document))
        }
    }

    private func profileReply(seconds: Int, clock: ProfileClock) throws -> PprofReply {
        var options = SamplingOptions()
        options.snapshot = snapshot
        options.rate = rate
        options.durationNanoseconds = UInt64(seconds) * 1_000_000_000
        options.mode = clock == .cpu ? .cpu : .wall
        options.profile = switch clock {
        case .block: .block
        case .mutex: .mutex
        case .cpu, .wall: .samples
        }
        let stop: @Sendable () -> Bool = { [self] in stopping.load(ordering: .relaxed) || StopSignals.requested }
        let result: SamplingResult
        switch served {
        case .one(let pid):
            result = try Profiler.sample(pid: pid, options: options, shouldStop: stop)
        case .several(let selector, let merging):
            let pids = try ProcessSelection.resolve(selector).pids
            guard !pids.isEmpty else { return .error(500, "could not profile \(served): none is running") }
            var several = try Profiler.sample(processes: selector, initial: pids, options: options, shouldStop: stop).sampling
            if merging { several.document.records = Grouper.mergingProcesses(several.document.records) }
            result = several
        }
        let time = PprofProto.SampledTime(mode: options.mode, rate: rate, durationNanoseconds: Int64(result.progress.elapsedNanoseconds),
                                          startUnixNanoseconds: result.startUnixNanoseconds)
        if clock == .block || clock == .mutex {
            return .download(PprofProto.writeContention(result.document, sampledTime: time), filename: clock.routeName)
        }
        return .download(PprofProto.write(result.document, sampledTime: time), filename: clock.routeName)
    }

}
