// `swiftprof attach PID`: sample every thread over time and print the profile.
import ArgumentParser
import Glibc
import SwiftProf

extension SamplingMode: ExpressibleByArgument {}
extension SampledProfile: ExpressibleByArgument {}

struct SamplingOptionGroup: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Samples a second.", valueName: "HZ"))
    var rate: Double = 100

    // Unconditional: "-1s" is a (bad) time, not an option, and is told so.
    @Option(name: .long, parsing: .unconditional,
            help: ArgumentHelp("How long to sample (10s, 500ms, 2m); without it, until Ctrl-C, SIGTERM or the end of the process.", valueName: "TIME"),
            transform: { text in
                guard let duration = Duration(argument: text) else {
                    throw ValidationError("a time more than 0 is needed (10s, 500ms, 2m, 1.5)")
                }
                return duration
            })
    var duration: Duration?

    @Flag(name: .long, help: "Show the progress line on stderr even when it is not a terminal (one line a report).")
    var progress = false

    @Flag(name: .long, help: "Print how the samples were taken (threads reused, copied without stop, sampled by the kernel, stopped; stack walks answered from memory) on stderr.")
    var stats = false

    @Flag(name: .long, help: "No perf_event: look at threads in /proc at each tick and stop running ones with ptrace, instead of the kernel's records of their switches and samples of their CPU time.")
    var noPerf = false

    @Option(name: .long, help: ArgumentHelp("wall: every thread at every tick, blocked or not (where the time goes); cpu: only threads on a CPU at the tick (where the CPU goes, as perf counts).", valueName: "wall|cpu"))
    var mode: SamplingMode = .wall

    @Option(name: .long, help: ArgumentHelp("samples: every sample the mode takes; block: only the time threads wait for another thread (a lock, condition variable, semaphore, join, futex, file lock), as Go's block profile; mutex: the time threads wait for a lock (mutex, read-write lock, file lock), under the holder's stack, as Go's mutex profile (contentions and delay; wall clock).", valueName: "samples|block|mutex"))
    var profile: SampledProfile = .samples

    func validate() throws {
        guard rate > 0 && rate <= 10_000 else { throw ValidationError("--rate must be more than 0 and at most 10000 samples a second") }
        if profile != .samples && mode == .cpu {
            throw ValidationError("--profile \(profile.rawValue) counts waits, off a CPU: not with --mode cpu")
        }
    }

    func options(_ capture: CaptureOptionGroup, symbols: SymbolOptionGroup, output: OutputOptions) -> SamplingOptions {
        var options = SamplingOptions()
        options.snapshot = capture.snapshotOptions(symbols)
        if output.blockedTime { options.snapshot.capture.procParts.insert(.lastRun) }
        options.snapshot.kernelAddresses = output.printsAddresses
        options.rate = rate
        options.durationNanoseconds = duration?.nanoseconds
        options.kernelSampling = !noPerf
        options.mode = mode
        options.recordsTimeline = output.format == .trace
        options.profile = profile
        return options
    }

    /// --stats: how the samples were taken, on stderr.
    func reportStatistics(_ progress: SamplingProgress) {
        guard stats else { return }
        let firstPass = decimal(Double(progress.firstPassNanoseconds) / 1e6, places: 1)
        warn("\(progress.samples) samples, \(progress.lossSummary), first pass \(firstPass) ms; "
             + "captures: \(progress.paths.summary), \(progress.rememberedWalks) walks remembered"
             + (progress.tickPriorityNote.map { "; \($0)" } ?? ""))
    }

    /// Samples `pid`, prints the profile, and says on stderr what a user should know.
    /// A target that cannot be sampled at all is thrown back as the TargetError.
    /// `command`: how the user asked for it ("swiftprof attach 4242"), for titles.
    /// `push`: where to upload the profile too, at the end or every interval of it.
    /// `followChildren`: the process and every descendant it has or starts (`run`);
    /// shown as one process's run when it never had another.
    func run(pid: Int32, capture: CaptureOptionGroup, symbols: SymbolOptionGroup, output: OutputOptions, command: String,
             push: PushOptionGroup? = nil, followChildren: Bool = false) throws -> SamplingResult {
        _ = try output.classifier()
        let uploads = push?.session(pid: pid, rate: rate, mode: mode)
        StopSignals.install()
        let live = progress || isatty(STDERR_FILENO) != 0
        let inPlace = isatty(STDERR_FILENO) != 0
        var options = options(capture, symbols: symbols, output: output)
        if uploads != nil { options.intervalNanoseconds = push?.pushInterval?.nanoseconds }
        var result: SamplingResult
        let onProgress: @Sendable (SamplingProgress) -> Void = { progress in
            if live { ProgressLine.show(progress, inPlace: inPlace) }
        }
        var ended: [ProcessIdentity] = []
        do {
            if followChildren {
                let run = try Profiler.sample(processes: .children(of: pid), initial: [pid], options: options, endsWith: pid,
                                              shouldStop: { StopSignals.requested }, onProgress: onProgress)
                result = run.asOneProcess ?? run.sampling
                ended = run.processes.count > 1 ? run.ended.filter { $0.pid != pid } : []
            } else {
                result = try Profiler.sample(pid: pid, options: options, shouldStop: { StopSignals.requested },
                                             onProgress: onProgress, onInterval: uploads?.onInterval)
            }
        } catch {
            _ = uploads?.finish()
            if inPlace { ProgressLine.clear() }
            throw error
        }
        if live { ProgressLine.show(result.progress, inPlace: inPlace, last: true) }
        result.document.command = command
        result.document.comments += failureComments(result.document.failures)
        try output.emit(try output.render(result.document))
        reportStatistics(result.progress)
        if capture.kernel == true, let note = result.kernelNote { warn(note) }
        if result.wasStopped { warn("process \(pid) was stopped by a signal and stays stopped") }
        for process in ended { warn("process \(process.pid) (\(NameQuoting.quoted(process.name))) ended during the run") }
        reportFailures(result.document.failures)
        if let uploads { result.failedUploads = uploads.finish(result, uploadedByInterval: options.intervalNanoseconds != nil) }
        return result
    }
}

enum ProgressLine {
    static func show(_ progress: SamplingProgress, inPlace: Bool, last: Bool = false) {
        let seconds = Double(progress.elapsedNanoseconds) / 1e9
        let stopped = Double(progress.paths.stoppedNanoseconds) / 1e6
        let longest = Double(progress.paths.longestStopNanoseconds) / 1e6
        let line = "swiftprof: \(decimal(seconds, places: 1)) s, \(progress.samples) samples, \(progress.threads) threads, "
            + "\(progress.lossSummary), target stopped \(decimal(stopped, places: 2)) ms (longest \(decimal(longest, places: 3)) ms)"
        _ = writeAll(STDERR_FILENO, inPlace ? "\r\u{1b}[K" + line + (last ? "\n" : "") : line + "\n")
    }

    static func clear() { _ = writeAll(STDERR_FILENO, "\r\u{1b}[K") }
}

struct AttachCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attach",
        abstract: "Sample every thread of a running process over time and print the aggregated profile.",
        discussion: """
            Every thread is placed where it was at the tick, from the kernel's records of its \
            context switches: one off a CPU is copied where its last switch out left it, without \
            a stop, and not copied again until it runs; one on a CPU is placed over the kernel's \
            samples of its CPU time. Where perf is refused (or with --no-perf), /proc says which \
            threads have run and running ones are stopped one at a time for their copy. Ticks are \
            jittered around the rate. Counts in the profile are samples. Ctrl-C or SIGTERM end the \
            run and print the profile; the process goes on as before.
            """
    )

    @OptionGroup(title: "Processes")
    var targets: ProcessTargets

    @OptionGroup(title: "Sampling")
    var sampling: SamplingOptionGroup

    @OptionGroup(title: "Output")
    var output: OutputOptions

    @OptionGroup(title: "Push")
    var push: PushOptionGroup

    @OptionGroup(title: "Capture")
    var capture: CaptureOptionGroup

    @OptionGroup(title: "Symbols")
    var symbols: SymbolOptionGroup

    func validate() throws {
        guard targets.isGiven else { throw ValidationError("give a PID to sample") }
        if targets.singlePID == nil && push.pushName != nil {
            throw ValidationError("--push-name names one process's series; of several processes each process name is a series")
        }
    }

    func run() throws {
        try OutputTarget.check(output.output)
        guard let pid = targets.singlePID else {
            try sampleProcesses()
            return
        }
        let result: SamplingResult
        do { result = try sampling.run(pid: pid, capture: capture, symbols: symbols, output: output, command: "swiftprof attach \(pid)",
                                              push: push) }
        catch let error as TargetError {
            warn(error.description)
            throw ExitStatus.cannotProfile
        }
        if result.targetExited {
            warn("process \(pid) exited after \(decimal(Double(result.progress.elapsedNanoseconds) / 1e9, places: 1)) s")
            // With a duration, a run cut short by the target's end is partial.
            if sampling.duration != nil { throw ExitStatus.partial }
        }
        if !result.document.failures.isEmpty || result.failedUploads > 0 { throw ExitStatus.partial }
    }
}

extension AttachCommand {
    /// Several processes sampled on one schedule, each record marked with its process.
    private func sampleProcesses() throws {
        _ = try output.classifier()
        let selection = try targets.resolve()
        guard let selector = targets.selector else { return }
        StopSignals.install()
        let live = sampling.progress || isatty(STDERR_FILENO) != 0
        let inPlace = isatty(STDERR_FILENO) != 0
        var options = sampling.options(capture, symbols: symbols, output: output)
        let uploads = push.session(pid: nil, rate: sampling.rate, mode: sampling.mode)
        if uploads != nil { options.intervalNanoseconds = push.pushInterval?.nanoseconds }
        var result: ProcessesSamplingResult
        do {
            result = try Profiler.sample(processes: selector, initial: selection.pids, options: options,
                                         shouldStop: { StopSignals.requested },
                                         onProgress: { progress in if live { ProgressLine.show(progress, inPlace: inPlace) } },
                                         onInterval: uploads?.onInterval)
        } catch {
            _ = uploads?.finish()
            if inPlace { ProgressLine.clear() }
            warn(error.description)
            throw ExitStatus.cannotProfile
        }
        if live { ProgressLine.show(result.sampling.progress, inPlace: inPlace, last: true) }
        var document = result.sampling.document
        if targets.mergeProcesses { document.records = Grouper.mergingProcesses(document.records) }
        document.command = "swiftprof attach"
        document.comments += failureComments(document.failures)
        try output.emit(try output.render(document))
        sampling.reportStatistics(result.sampling.progress)
        if sampling.stats {
            warn("processes: \(result.processes.count) sampled, \(result.foundByForkRecords) of them found during the run by a FORK record")
        }
        for process in result.ended { warn("process \(process.pid) (\(NameQuoting.quoted(process.name))) ended during the run") }
        for line in result.unread { warn(line) }
        if result.sampling.wasStopped { warn("a process was stopped by a signal and stays stopped") }
        reportFailures(document.failures)
        let failedUploads = uploads?.finish(result.sampling, uploadedByInterval: options.intervalNanoseconds != nil) ?? 0
        if !document.failures.isEmpty || !result.unread.isEmpty || failedUploads > 0 { throw ExitStatus.partial }
    }
}
