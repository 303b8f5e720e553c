// `swiftprof dump PID`: one consistent snapshot of every thread.
import ArgumentParser
import Foundation
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

    @Argument(help: "The process to profile.")
    var pid: Int32

    @Option(name: .long, help: "Output format: \(OutputFormat.allCases.map(\.rawValue).joined(separator: ", ")).")
    var format: OutputFormat = .pprofText

    @Option(name: [.customShort("o"), .long], help: "Write to FILE instead of standard output.")
    var output: String?

    @Flag(name: .long, help: "Show physical frames only, without the functions inlined into them.")
    var noInline = false

    @Flag(name: .long, help: "Print symbol names as they are in the binary.")
    var noDemangle = false

    @Option(name: .long, help: "absolute: addresses in the target; relative: minus each object's load bias, stable across runs.")
    var addresses: AddressMode = .absolute

    @Flag(name: .long, help: "Append the target's memory map (--- Memory map: ---) for go tool pprof.")
    var memoryMap = false

    @Option(name: .long, help: "Bytes of each thread's stack to copy, from its stack pointer up.")
    var stackBytes: Int = 512 * 1024

    @Option(name: .long, help: "Deepest stack to unwind, in physical frames.")
    var maxFrames: Int = 256

    @Option(name: .long, help: "Milliseconds to wait for a thread to stop; the others stay stopped meanwhile. A thread that does not stop (state D) is reported and skipped.")
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
        for failure in snapshot.failures { warn("thread \(failure.tid) not captured: \(failure.reason)") }
        if !snapshot.isComplete { throw ExitStatus.partial }
    }

    private func emit(_ text: String) throws {
        guard let output else {
            FileHandle.standardOutput.write(Data(text.utf8))
            return
        }
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: output))
        } catch {
            warn("cannot write \(output): \(error.localizedDescription)")
            throw ExitStatus.cannotProfile
        }
    }
}

extension SnapshotStatistics {
    var summary: String {
        func ms(_ ns: UInt64) -> String { String(format: "%.3f ms", Double(ns) / 1e6) }
        return "\(threads) threads, target stopped \(ms(stopWindowNanoseconds)), capture \(ms(captureNanoseconds)), "
            + "unwind \(ms(unwindNanoseconds)), symbolize \(ms(symbolizeNanoseconds)), \(stackBytes / 1024) KiB of stack copied"
    }
}
