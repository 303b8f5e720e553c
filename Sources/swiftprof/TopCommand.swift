// `swiftprof top PID`: a live view of the hottest functions, refreshed every
// second, like py-spy top. q (or Ctrl-C) quits; the process goes on.
import ArgumentParser
import Glibc
import SwiftProf
import Synchronization

struct TopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "top",
        abstract: "Show the hottest functions of a running process, live; q quits.",
        discussion: """
            Counts are samples since the start, each function shown with its file. Without a \
            terminal, one table is printed when top ends (Ctrl-C, SIGTERM or the end of the \
            process). The end of the process is said, with exit status 1.
            """
    )

    @OptionGroup(title: "Processes")
    var targets: ProcessTargets

    @Option(name: .long, help: ArgumentHelp("Samples a second.", valueName: "HZ"))
    var rate: Double = 100

    @Flag(name: .long, help: "Count threads blocked in the kernel too, not only running ones.")
    var idle = false

    @OptionGroup(title: "Capture")
    var capture: CaptureOptionGroup

    @OptionGroup(title: "Symbols")
    var symbols: SymbolOptionGroup

    func validate() throws {
        guard targets.isGiven else { throw ValidationError("give a PID to watch") }
        if targets.mergeProcesses { throw ValidationError("--merge-processes does not apply to top, whose rows are functions of every process") }
        guard rate > 0 && rate <= 10_000 else { throw ValidationError("--rate must be more than 0 and at most 10000 samples a second") }
        // Its screen counts user functions: the kernel's frames of blocked threads are not read.
        if capture.kernel == true { throw ValidationError("--kernel does not apply to top, which counts the functions of user code") }
    }

    func run() throws {
        StopSignals.install()
        let terminal = Terminal()
        defer { terminal.restore() }
        var options = SamplingOptions()
        options.snapshot = capture.snapshotOptions(symbols)
        options.snapshot.kernelAddresses = false  // names only on this screen
        options.rate = rate
        // Without --idle only running threads are shown: blocked ones need not be copied.
        options.mode = idle ? .wall : .cpu
        let idle = self.idle, rate = self.rate
        // Several processes: their functions in one table, the header says how many.
        let selection = targets.singlePID == nil ? try targets.resolve() : nil
        let pid = targets.singlePID ?? selection?.pids.first ?? 0
        let title = selection.map { "\($0.pids.count) processes" }
            ?? "\(pid) (\((try? readTextFile("/proc/\(pid)/comm"))?.split(separator: "\n").first.map(String.init) ?? "?"))"
        // Without a terminal there is no screen to redraw and no q to read: one table at
        // the end (Ctrl-C, SIGTERM or the end of the process), as a batch top prints.
        let interactive = terminal.isInteractive
        // Without a screen nothing is drawn, so nothing is symbolized while sampling either.
        var onRefresh: (@Sendable ([Record], SamplingProgress) -> Void)?
        if interactive {
            onRefresh = { records, progress in
                let table = TopTable(records: records, includeIdle: idle)
                terminal.draw(header(title, rate: rate, progress: progress, table: table, quitKey: terminal.readsKeys), table: table)
            }
        }
        let result: SamplingResult
        do {
            if let selection, let selector = targets.selector {
                result = try Profiler.sample(processes: selector, initial: selection.pids, options: options,
                                             shouldStop: { StopSignals.requested || terminal.quitRequested },
                                             onRefresh: onRefresh).sampling
            } else {
                result = try Profiler.sample(pid: pid, options: options,
                                             shouldStop: { StopSignals.requested || terminal.quitRequested },
                                             onRefresh: onRefresh)
            }
            terminal.restore()
        } catch {
            terminal.restore()
            warn(error.description)
            throw ExitStatus.cannotProfile
        }
        if !interactive {
            // The run's own profile: nothing kept from the refreshes it did not draw.
            let table = TopTable(records: result.document.records, includeIdle: idle)
            terminal.draw(header(title, rate: rate, progress: result.progress, table: table, quitKey: false), table: table)
        }
        // As attach: a run cut short by the end of the process is said, and partial.
        if result.targetExited {
            warn(selection == nil ? "process \(pid) exited" : "every process exited")
            throw ExitStatus.partial
        }
    }
}

/// `title`: "4242 (name)", or "3 processes".
private func header(_ title: String, rate: Double, progress: SamplingProgress, table: TopTable, quitKey: Bool) -> String {
    let seconds = decimal(Double(progress.elapsedNanoseconds) / 1e9, places: 1)
    // Ticks lost: those the sampler could not take on time, the screen's drawing among them.
    let lost = "lost \(progress.lost) ticks" + (progress.lostDrawing > 0 ? " (\(progress.lostDrawing) while drawing)" : "")
    return "swiftprof top \(title): \(seconds) s, \(progress.samples) ticks at \(decimal(rate, places: 0)) Hz since the start, "
        + "\(progress.threads) threads, \(table.samples) thread samples shown, \(lost)" + (quitKey ? "   (q quits)" : "")
}

/// The terminal while `top` runs: the alternate screen, no echo, keys read one
/// at a time on a thread of their own; everything put back on the way out.
final class Terminal: @unchecked Sendable {
    private let interactive = isatty(STDOUT_FILENO) != 0
    /// A screen to redraw (standard output is a terminal).
    var isInteractive: Bool { interactive }
    /// q is read from standard input (a terminal).
    var readsKeys: Bool { rawInput }
    private var saved = termios()
    private var rawInput = false
    private let quit = Atomic<Bool>(false)
    private let restored = Atomic<Bool>(false)

    var quitRequested: Bool { quit.load(ordering: .relaxed) }

    init() {
        if isatty(STDIN_FILENO) != 0, tcgetattr(STDIN_FILENO, &saved) == 0 {
            var raw = saved
            raw.c_lflag &= ~tcflag_t(ICANON | ECHO)
            rawInput = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0
        }
        if interactive { _ = writeAll(STDOUT_FILENO, "\u{1b}[?1049h\u{1b}[?25l") }
        // Keys are read on a detached thread of their own: it blocks in read(2).
        var thread = pthread_t()
        if pthread_create(&thread, nil, { context in
            Unmanaged<Terminal>.fromOpaque(context!).takeRetainedValue().readKeys()
            return nil
        }, Unmanaged.passRetained(self).toOpaque()) == 0 {
            pthread_detach(thread)
        }
    }

    private func readKeys() {
        var byte: UInt8 = 0
        while read(STDIN_FILENO, &byte, 1) == 1 {
            if byte == UInt8(ascii: "q") || byte == UInt8(ascii: "Q") {
                quit.store(true, ordering: .relaxed)
                return
            }
        }
    }

    func draw(_ header: String, table: TopTable) {
        var size = winsize()
        let rows = interactive && ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0 && size.ws_row > 4 ? Int(size.ws_row) : 24
        let width = interactive && size.ws_col > 20 ? Int(size.ws_col) : 120
        let lines = [String(header.prefix(width)), ""] + table.render(rows: rows - 3, width: width)
        let screen = interactive ? "\u{1b}[H\u{1b}[2J" + lines.joined(separator: "\r\n") : lines.joined(separator: "\n") + "\n\n"
        _ = writeAll(STDOUT_FILENO, screen)
    }

    func restore() {
        guard !restored.exchange(true, ordering: .relaxed) else { return }
        if rawInput { tcsetattr(STDIN_FILENO, TCSANOW, &saved) }
        if interactive { _ = writeAll(STDOUT_FILENO, "\u{1b}[?25h\u{1b}[?1049l") }
    }
}
