// `swiftprof dump PID`: one consistent snapshot of every thread.
import ArgumentParser
import Glibc
import SwiftProf

struct DumpCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump",
        abstract: "Print one snapshot of every thread's stack, grouped by identical stacks."
    )

    @OptionGroup(title: "Processes")
    var targets: ProcessTargets

    /// The one process of a single-process dump.
    private var pid: Int32? { targets.singlePID }

    @Option(name: .long, help: ArgumentHelp("Convert a saved profile (pprof-text, JSON or pprof) instead of profiling a process.", valueName: "FILE"))
    var input: String?

    @Option(name: .long, help: ArgumentHelp("Read a core file (from the kernel, gcore or systemd-coredump; zstd, xz and lz4 ones as they are) instead of a live process: its threads, with --goroutines a Go program's goroutines, with --tasks a Swift program's tasks. Its executable and libraries are found where the core says (under --sysroot), each checked against the build-id the core recorded.", valueName: "FILE"))
    var core: String?

    @Option(name: .long, help: ArgumentHelp("With --core: the core's executable, when it is not where the core says.", valueName: "PATH"))
    var exe: String?

    @Option(name: .long, help: ArgumentHelp("With --core: the directory the core's files are under (a copy of the machine or container it came from).", valueName: "DIR"))
    var sysroot: String?

    @OptionGroup(title: "Output")
    var output: OutputOptions

    @OptionGroup(title: "Capture")
    var capture: CaptureOptionGroup

    @OptionGroup(title: "Symbols")
    var symbols: SymbolOptionGroup

    @Flag(name: .long, help: "Stop every thread at once, so that all stacks are of one instant (blocked threads then see EINTR from epoll_wait and the like). By default blocked threads are copied without a stop and running ones stopped one at a time.")
    var consistent = false

    @Flag(name: .long, help: "List every goroutine of a Go program, parked ones too, grouped as Go's /debug/pprof/goroutine?debug=1 prints them (needs the binary's DWARF; every thread is stopped while the goroutines are copied).")
    var goroutines = false

    @Flag(name: .long, help: "List every async task of a Swift program, suspended ones too, with its async backtrace, state, name and, when running, its thread, grouped like goroutines (read with the Swift runtime's reflection library, without a stop; threads on a CPU are stopped one at a time only to find which runs a running task).")
    var tasks = false

    @Flag(name: .long, help: "Print capture statistics (threads, pause, time per stage) on stderr.")
    var stats = false

    @Flag(name: .long, help: "Exit with status 3 when threads are deadlocked (a cycle of threads each waiting for a lock the next holds, or to join it) or a Swift program's cooperative pool has been starved for a second, after printing the snapshot: for a health check or a CI job.")
    var failOnDeadlock = false

    func validate() throws {
        if output.format == .trace { throw ValidationError("--format trace is a timeline of a sampled run: use attach or run") }
        switch (targets.isGiven, input, core) {
        case (false, nil, nil): throw ValidationError("give a PID to profile, --core FILE to read, or --input FILE to convert")
        case (true, nil, nil), (false, .some, nil), (false, nil, .some): break
        default: throw ValidationError("give one of a PID, --core FILE or --input FILE")
        }
        if targets.isGiven && pid == nil {
            let given = [(goroutines, "--goroutines"), (tasks, "--tasks"), (consistent, "--consistent")].filter(\.0).map(\.1)
            if !given.isEmpty {
                throw ValidationError("\(given.joined(separator: ", ")) \(given.count == 1 ? "reads" : "read") one process: give one PID")
            }
        }
        if core == nil && (exe != nil || sysroot != nil) {
            throw ValidationError("--exe and --sysroot say where a core's files are: only with --core FILE")
        }
        if core != nil {
            let given = [(consistent, "--consistent"), (failOnDeadlock, "--fail-on-deadlock"),
                         (capture.kernel != nil, capture.kernel == true ? "--kernel" : "--no-kernel"),
                         (!capture.threads.isEmpty, "--threads")].filter(\.0).map(\.1)
            if !given.isEmpty {
                throw ValidationError("\(given.joined(separator: ", ")) \(given.count == 1 ? "acts" : "act") on a live process: not with --core")
            }
        }
        if goroutines && core == nil && (input != nil || consistent) {
            throw ValidationError("--goroutines reads a live Go process (and always stops it whole): not with --input or --consistent")
        }
        if tasks && (input != nil || goroutines) {
            throw ValidationError("--tasks reads a Swift program's tasks: not with --input or --goroutines")
        }
        if failOnDeadlock && (input != nil || goroutines || tasks) {
            throw ValidationError("--fail-on-deadlock looks at a live process's threads: not with --input, --goroutines or --tasks")
        }
        // A saved profile is converted as it is: what changes a capture cannot apply.
        if input != nil {
            let given = capture.givenCaptureOptions(symbols) + (consistent ? ["--consistent"] : []) + (stats ? ["--stats"] : [])
            if !given.isEmpty {
                throw ValidationError("\(given.joined(separator: ", ")) \(given.count == 1 ? "changes" : "change") how a process is captured: not with --input, which converts a saved profile as it is")
            }
        }
    }

    func run() throws {
        try OutputTarget.check(output.output)
        if let input {
            _ = try output.classifier()
            try output.emit(try output.render(try readProfile(input)))
            return
        }
        if let core {
            try dumpCore(core)
            return
        }
        guard let pid else {
            try dumpProcesses()
            return
        }
        if goroutines {
            try dumpGoroutines(pid)
            return
        }
        if tasks {
            try dumpTasks(pid)
            return
        }
        var options = capture.snapshotOptions(symbols)
        options.consistent = consistent
        options.kernelAddresses = output.printsAddresses
        // --fail-on-deadlock: a starved pool counts once it has been for a second.
        if output.blockedTime || failOnDeadlock { options.capture.procParts.insert(.lastRun) }
        _ = try output.classifier()  // a bad rules file is bad usage: say so before touching the target

        let (document, snapshot, statistics, waits, pool): (ProfileDocument, Snapshot, SnapshotStatistics, WaitLines, SwiftPool?)
        do {
            (document, snapshot, statistics, waits, pool) = try SnapshotDocuments.threads(pid: pid, options: options,
                                                                                    threadIDs: output.addresses != .relative,
                                                                                          blockedTime: output.blockedTime)
        } catch {
            warn(error.description)
            throw ExitStatus.cannotProfile
        }
        try output.emit(try output.render(document))

        if stats { warn(statistics.summary + ", peak memory \(peakMemoryMiB()) MiB") }
        if capture.kernel == true, let note = statistics.kernelNote { warn(note) }
        let starved = pool?.starvedNanoseconds.map { $0 >= 1_000_000_000 } == true
        if failOnDeadlock && (!waits.deadlocks.isEmpty || starved) {
            for line in waits.deadlocks + (starved ? pool?.lines(blockedTime: true).prefix(1) ?? [] : []) { warn(line) }
            reportFailures(snapshot.failures)
            throw ExitStatus.deadlock
        }
        try finish(snapshot)
    }

    /// What a user should know after the profile is out, and the exit status it gives.
    private func finish(_ snapshot: Snapshot) throws {
        if snapshot.wasStopped { warn("process \(snapshot.pid) was stopped by a signal before the capture and stays stopped") }
        reportFailures(snapshot.failures)
        if !snapshot.isComplete { throw ExitStatus.partial }
    }
}

extension DumpCommand {
    /// Several processes in one snapshot: each read as `dump PID` reads one, in pid order.
    private func dumpProcesses() throws {
        var options = capture.snapshotOptions(symbols)
        options.kernelAddresses = output.printsAddresses
        if output.blockedTime || failOnDeadlock { options.capture.procParts.insert(.lastRun) }
        _ = try output.classifier()
        let selection = try targets.resolve()
        let (document, snapshots, unread, deadlocks) = SnapshotDocuments.processes(
            selection.pids, options: options, threadIDs: output.addresses != .relative, blockedTime: output.blockedTime,
            merging: targets.mergeProcesses)
        guard !snapshots.isEmpty else {
            for line in unread { warn(line) }
            warn("no process could be read")
            throw ExitStatus.cannotProfile
        }
        try output.emit(try output.render(document))
        if failOnDeadlock && !deadlocks.isEmpty {
            for line in deadlocks { warn(line) }
            throw ExitStatus.deadlock
        }
        for line in unread { warn(line) }
        for snapshot in snapshots where snapshot.wasStopped {
            warn("process \(snapshot.pid) was stopped by a signal before the capture and stays stopped")
        }
        let failures = snapshots.flatMap(\.failures)
        reportFailures(failures)
        // A process that ended while being looked at is not a failure of the others' snapshot.
        if !failures.isEmpty || unread.contains(where: { !$0.hasSuffix("ended before it was read") }) { throw ExitStatus.partial }
    }

    /// A goroutine or task snapshot: read (a failure is one line and exit status 2),
    /// printed, its statistics on stderr with --stats.
    private func dumpSpecial<Statistics>(read: () throws -> (document: ProfileDocument, snapshot: Snapshot, statistics: Statistics),
                                         summary: (Statistics) -> String) throws {
        _ = try output.classifier()
        let (document, snapshot, statistics): (ProfileDocument, Snapshot, Statistics)
        do {
            (document, snapshot, statistics) = try read()
        } catch {
            warn("\(error)")
            throw ExitStatus.cannotProfile
        }
        try output.emit(try output.render(document))
        if stats { warn(summary(statistics)) }
        try finish(snapshot)
    }

    private func dumpGoroutines(_ pid: Int32) throws {
        try dumpSpecial(read: { try SnapshotDocuments.goroutines(pid: pid, options: capture.snapshotOptions(symbols)) },
                        summary: { statistics in
                            "\(statistics.goroutines) goroutines (\(statistics.copiedWithoutStop) copied before the stop, unchanged in it), all threads stopped for "
                                + "\(decimal(Double(statistics.stopWindowNanoseconds) / 1e6, places: 3)) ms, "
                                + "\(statistics.stackBytes / 1024) KiB of goroutine stacks copied, peak memory \(peakMemoryMiB()) MiB"
                        })
    }

    private func dumpCore(_ path: String) throws {
        _ = try output.classifier()
        let files = CoreFileOptions(executable: exe, sysroot: sysroot.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 } ?? "")
        let (document, statistics): (ProfileDocument, CoreStatistics)
        do {
            (document, _, statistics) = try SnapshotDocuments.core(path: path, files: files, options: capture.snapshotOptions(symbols),
                                                                   view: goroutines ? .goroutines : tasks ? .tasks : .threads)
        } catch {
            warn(error.description)
            throw error.kind == .unreadable ? ExitStatus.noInput : ExitStatus.malformedInput
        }
        try output.emit(try output.render(document))
        if stats {
            warn("\(statistics.threads) threads read from the core in \(decimal(Double(statistics.nanoseconds) / 1e6, places: 3)) ms"
                 + (statistics.compression.map { " (inflated from \($0))" } ?? "") + ", peak memory \(peakMemoryMiB()) MiB")
        }
        for line in statistics.missingFiles { warn("not symbolized: \(line)") }
        if !statistics.missingFiles.isEmpty { throw ExitStatus.partial }
    }

    private func dumpTasks(_ pid: Int32) throws {
        var options = capture.snapshotOptions(symbols)
        options.consistent = consistent
        try dumpSpecial(read: { try SnapshotDocuments.tasks(pid: pid, options: options) },
                        summary: { statistics in
                            "\(statistics.tasks) tasks (not shown: \(statistics.runtime) of the runtime, \(statistics.finished) returned, \(statistics.dead) dead, \(statistics.changing) changing as read), "
                                + "\(statistics.scannedBytes / 1024) KiB of memory scanned in \(decimal(Double(statistics.nanoseconds) / 1e6, places: 1)) ms"
                                + (statistics.stopWindowNanoseconds.map { ", all threads stopped for \(decimal(Double($0) / 1e6, places: 3)) ms" } ?? "")
                        })
    }
}

/// swiftprof's own peak resident memory so far, for --stats: VmHWM, its address
/// space's high-water mark since exec. Not getrusage's maxrss, which a process
/// started by posix_spawn (vfork) inherits from its parent's memory at the exec.
private func peakMemoryMiB() -> Int {
    guard let status = try? readTextFile("/proc/self/status"),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
          let kib = Int(line.dropFirst("VmHWM:".count).filter(\.isNumber)) else { return 0 }
    return kib / 1024
}

extension SnapshotStatistics {
    var summary: String {
        func ms(_ ns: UInt64) -> String { decimal(Double(ns) / 1e6, places: 3) + " ms" }
        // Thread by thread, each copy is unwound as it is taken (to know whether it needs a stop).
        let stages = unwindNanoseconds > 0 ? "capture \(ms(captureNanoseconds)), unwind \(ms(unwindNanoseconds))"
            : "capture and unwind \(ms(captureNanoseconds))"
        return "\(threads) threads (\(paths.summary)), longest stop \(ms(stopWindowNanoseconds)), \(stages), "
            + "symbolize \(ms(symbolizeNanoseconds)), \(stackBytes / 1024) KiB of stack copied"
    }
}
