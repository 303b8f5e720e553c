// `swiftprof dump PID`: one consistent snapshot of every thread.
import ArgumentParser
import Glibc
import SwiftProf

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case pprofText = "pprof-text"
}

extension AddressMode: ExpressibleByArgument {}

struct DumpCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump",
        abstract: "Print one snapshot of every thread's stack, grouped by identical stacks."
    )

    @Argument(help: ArgumentHelp("The process to profile.", valueName: "PID"))
    var pid: Int32

    @Option(name: .long, help: ArgumentHelp("Output format: \(OutputFormat.allCases.map(\.rawValue).joined(separator: ", ")).", valueName: "FORMAT"))
    var format: OutputFormat = .pprofText

    @Option(name: [.customShort("o"), .long], help: ArgumentHelp("Write to FILE instead of standard output.", valueName: "FILE"))
    var output: String?

    @Flag(name: .long, help: "Show physical frames only, without the functions inlined into them.")
    var noInline = false

    @Flag(name: .long, help: "Print symbol names as they are in the binary.")
    var noDemangle = false

    @Option(name: .long, help: ArgumentHelp("absolute: addresses as in the target; relative: minus each object's load bias (link-time addresses), the same across runs.", valueName: "absolute|relative"))
    var addresses: AddressMode = .absolute

    @Flag(name: .long, help: "Append the target's memory map (--- Memory map: ---) for go tool pprof.")
    var memoryMap = false

    @Option(name: .long, help: ArgumentHelp("Bytes of each thread's stack to copy, from its stack pointer up.", valueName: "BYTES"))
    var stackBytes: Int = 512 * 1024

    @Option(name: .long, help: ArgumentHelp("Deepest stack to unwind, in physical frames; a deeper one is marked truncated.", valueName: "N"))
    var maxFrames: Int = 256

    @Option(name: .long, help: ArgumentHelp("Milliseconds to wait for a thread to stop; the others stay stopped meanwhile. A thread that does not stop (state D) is reported and skipped (exit status 1).", valueName: "MS"))
    var stopTimeout: Int = 250

    @Flag(name: .long, help: "Print capture statistics (threads, pause, time per stage) on stderr.")
    var stats = false

    func validate() throws {
        guard pid > 0 else { throw ValidationError("PID must be a positive process id, not \(pid)") }
        guard stackBytes >= 4096 && stackBytes <= 64 << 20 else {
            throw ValidationError("--stack-bytes must be between 4096 and 67108864")
        }
        guard stopTimeout >= 1 && stopTimeout <= 60_000 else { throw ValidationError("--stop-timeout must be between 1 and 60000 ms") }
        guard maxFrames >= 1 && maxFrames <= 100_000 else { throw ValidationError("--max-frames must be between 1 and 100000") }
        if memoryMap && addresses == .relative {
            throw ValidationError("--memory-map needs --addresses=absolute: the map lists absolute addresses")
        }
    }

    func run() throws {
        var options = SnapshotOptions()
        options.capture.stackBytes = stackBytes
        options.capture.stopTimeoutNanoseconds = UInt64(stopTimeout) * 1_000_000
        options.unwind.maxFrames = maxFrames
        options.symbolize = SymbolizeOptions(demangle: !noDemangle, inlineFrames: !noInline)

        let snapshot: Snapshot
        let statistics: SnapshotStatistics
        do {
            (snapshot, statistics) = try Profiler.snapshot(pid: pid, options: options)
        } catch {
            warn(error.description)
            throw ExitStatus.cannotProfile
        }

        let records = Grouper.records(snapshot.threads, addresses: addresses)
        let text = PprofTextWriter(addresses: addresses, memoryMapLines: memoryMap ? snapshot.memoryMapLines : nil)
            .write(records)
        try emit(text)

        if stats { warn(statistics.summary) }
        if snapshot.wasStopped { warn("process \(pid) was stopped by a signal before the capture and stays stopped") }
        for failure in snapshot.failures { warn("thread \(failure.tid) not captured: \(failure.reason)") }
        if !snapshot.isComplete { throw ExitStatus.partial }
    }

    private func emit(_ text: String) throws {
        guard let output else {
            if !writeAll(STDOUT_FILENO, text) && errno != EPIPE {
                warn("cannot write standard output: \(String(cString: strerror(errno)))")
                throw ExitStatus.cannotProfile
            }
            return
        }
        let fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0, writeAll(fd, text), close(fd) == 0 else {
            warn("cannot write \(output): \(String(cString: strerror(errno)))")
            throw ExitStatus.cannotProfile
        }
    }
}

extension SnapshotStatistics {
    var summary: String {
        func ms(_ ns: UInt64) -> String {
            let micros = (ns + 500) / 1000
            let fraction = String(micros % 1000)
            return "\(micros / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction) ms"
        }
        return "\(threads) threads, target stopped \(ms(stopWindowNanoseconds)), capture \(ms(captureNanoseconds)), "
            + "unwind \(ms(unwindNanoseconds)), symbolize \(ms(symbolizeNanoseconds)), \(stackBytes / 1024) KiB of stack copied"
    }
}
