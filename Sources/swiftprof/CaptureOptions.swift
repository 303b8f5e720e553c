// How stacks are captured and named: shared by dump, attach, run and top.
import ArgumentParser
import SwiftProf

/// How frames are named: a group of its own in the help.
struct SymbolOptionGroup: ParsableArguments {
    @Flag(name: .long, help: "Show physical frames only, without the functions inlined into them.")
    var noInline = false

    @Flag(name: .long, help: "Print symbol names as they are in the binary.")
    var noDemangle = false

    @Option(name: .long, help: ArgumentHelp("How Swift names are shown: simplified, as Swift's backtracer prints them (SwiftParked.Store.park<A>(key:), async functions marked \"async\", thunks left out), or full (the whole demangling, thunks shown). Default: simplified.", valueName: "full|simplified"))
    var swiftNames: SwiftNameStyle?

    @Flag(name: .long, help: "Leave out Swift thunks (reabstraction, partial application, @objc, dispatch thunks, protocol witnesses).")
    var hideThunks = false

    @Flag(name: .long, help: "Show C++ and Rust names without template arguments, parameter lists or return types (fixture::Parker::park).")
    var shortNames = false

}

struct CaptureOptionGroup: ParsableArguments {
    /// --kernel and --no-kernel, each with its own help (an inverted flag shares one).
    enum KernelFrames: String, EnumerableFlag {
        case kernel, noKernel

        static func help(for value: KernelFrames) -> ArgumentHelp? {
            switch value {
            case .kernel:
                return "Show each blocked thread's kernel frames (from /proc/PID/task/TID/stack), innermost first, before its user frames, and say why when the kernel does not show them. The default where the kernel shows them (root)."
            case .noKernel:
                return "Leave out kernel frames: user frames only."
            }
        }
    }

    @Flag var kernelFrames: KernelFrames?
    /// nil: neither flag given.
    var kernel: Bool? { kernelFrames.map { $0 == .kernel } }

    @Option(name: .long, help: ArgumentHelp("Bytes of each thread's stack to copy, from its stack pointer up.", valueName: "BYTES"))
    var stackBytes: Int = 512 * 1024

    @Option(name: .long, help: ArgumentHelp("Deepest stack to unwind, in physical frames; a deeper one is marked truncated.", valueName: "N"))
    var maxFrames: Int = 256

    @Option(name: .long, help: ArgumentHelp("Capture at most N threads (the lowest thread ids); the others are reported as not captured (exit status 1). With --stack-bytes it bounds swiftprof's memory.", valueName: "N"))
    var maxThreads: Int = 10_000

    @Option(name: .long, help: ArgumentHelp("Capture only the threads whose name matches GLOB (the shell's patterns: 'worker-*'); repeat it for more. The others are not read at all.", valueName: "GLOB"))
    var threads: [String] = []

    @Option(name: .long, help: ArgumentHelp("Milliseconds to wait for a thread to stop. A thread that does not stop (state D) is reported and skipped (exit status 1), or kept as far as /proc shows it. With --goroutines (and --tasks --consistent), also the longest the stopped process is read: the rest is reported unread (exit status 1).", valueName: "MS"))
    var stopTimeout: Int = 250

    /// The flags given that act on a capture (for the commands that may have none).
    func givenCaptureOptions(_ symbols: SymbolOptionGroup) -> [String] {
        var given: [String] = []
        if symbols.noInline { given.append("--no-inline") }
        if symbols.noDemangle { given.append("--no-demangle") }
        if symbols.swiftNames != nil { given.append("--swift-names") }
        if symbols.hideThunks { given.append("--hide-thunks") }
        if symbols.shortNames { given.append("--short-names") }
        if let kernel { given.append(kernel ? "--kernel" : "--no-kernel") }
        if !threads.isEmpty { given.append("--threads") }
        return given
    }

    func validate() throws {
        guard stackBytes >= 4096 && stackBytes <= 64 << 20 else {
            throw ValidationError("--stack-bytes must be between 4096 and 67108864")
        }
        guard stopTimeout >= 1 && stopTimeout <= 60_000 else { throw ValidationError("--stop-timeout must be between 1 and 60000 ms") }
        guard maxThreads >= 1 else { throw ValidationError("--max-threads must be at least 1") }
        guard maxFrames >= 1 && maxFrames <= 1_000_000 else { throw ValidationError("--max-frames must be between 1 and 1000000") }
    }

    func snapshotOptions(_ symbols: SymbolOptionGroup) -> SnapshotOptions {
        var options = SnapshotOptions()
        options.capture.stackBytes = stackBytes
        options.capture.stopTimeoutNanoseconds = UInt64(stopTimeout) * 1_000_000
        options.capture.maxThreads = maxThreads
        options.capture.threadNames = ThreadNameFilter(threads)
        options.unwind.maxFrames = maxFrames
        options.symbolize = SymbolizeOptions(
            names: NameOptions(demangle: !symbols.noDemangle, swiftNames: symbols.swiftNames ?? .simplified, shortNames: symbols.shortNames),
            inlineFrames: !symbols.noInline, hidesThunks: symbols.hideThunks || symbols.swiftNames != .full)
        options.kernelFrames = kernel ?? true
        options.capture.procParts = options.kernelFrames ? [.kernelStack] : []
        return options
    }
}

extension SwiftNameStyle: ExpressibleByArgument {}

/// "10s", "500ms", "2m", "1.5" (seconds).
struct Duration: ExpressibleByArgument {
    let nanoseconds: UInt64

    init?(argument: String) {
        let units: [(String, Double)] = [("ms", 1e6), ("us", 1e3), ("s", 1e9), ("m", 60e9), ("h", 3600e9)]
        var text = Substring(argument)
        var scale = 1e9
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            text = text.dropLast(suffix.count)
            scale = factor
            break
        }
        guard let value = Double(text), value > 0, value * scale < 1e18 else { return nil }
        nanoseconds = UInt64(value * scale)
    }

    static var defaultValueDescription: String { "10s" }
}
