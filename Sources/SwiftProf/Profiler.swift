// The pipeline of one snapshot: capture (target stopped), then unwind and
// symbolize the copies (target running), then hand back plain values.

public struct SnapshotOptions: Sendable {
    public var capture = CaptureOptions()
    public var unwind = UnwindOptions()
    public var symbolize = SymbolizeOptions()
    /// Put each blocked thread's kernel frames below its user frames.
    public var kernelFrames = true

    public init() {}
}

/// Where the time of one snapshot went; printed by `--stats`, never in the profile.
public struct SnapshotStatistics: Sendable {
    public var threads = 0
    public var stopWindowNanoseconds: UInt64 = 0
    public var captureNanoseconds: UInt64 = 0
    public var unwindNanoseconds: UInt64 = 0
    public var symbolizeNanoseconds: UInt64 = 0
    public var stackBytes = 0
    /// Why kernel frames are missing or have no addresses, when they are.
    public var kernelNote: String?
}

public enum Profiler {
    public static func snapshot(pid: Int32, options: SnapshotOptions = SnapshotOptions())
        throws(TargetError) -> (Snapshot, SnapshotStatistics) {
        var statistics = SnapshotStatistics()
        let started = monotonicNanoseconds()
        let captureOptions = options.capture
        let capture = try TracerThread.run { () throws(TargetError) -> Capture in
            try StopTheWorld(pid: pid, options: captureOptions).run()
        }
        statistics.captureNanoseconds = monotonicNanoseconds() - started
        statistics.stopWindowNanoseconds = capture.stopWindowNanoseconds
        statistics.threads = capture.threads.count
        statistics.stackBytes = capture.threads.reduce(0) { $0 + $1.stack.bytes.count }

        var clock = monotonicNanoseconds()
        let image = TargetImage(pid: pid, memoryMap: capture.memoryMap)
        let unwinder = LibunwindUnwinder(image: image)
        let unwound = capture.threads.map { thread in
            unwinder?.unwind(thread, options: options.unwind)
                ?? UnwoundStack(pcs: [thread.registers.pc], truncation: "libunwind is unavailable")
        }
        statistics.unwindNanoseconds = monotonicNanoseconds() - clock

        clock = monotonicNanoseconds()
        let states = capture.threads.map { ThreadStates.state(of: $0, now: clock) }
        let kernelNames = Set(states.flatMap { $0?.kernel.map(\.function) ?? [] })
        let kallsyms = options.kernelFrames ? Kallsyms.load(kernelNames) : nil
        let vdso = capture.memoryMap.regions.first { $0.path == "[vdso]" }
        let symbolizer = Symbolizer(pid: pid, modules: image.symbolModules(), vdso: vdso, options: options.symbolize)
        var threads: [ThreadStack] = []
        for ((thread, stack), state) in zip(zip(capture.threads, unwound), states) {
            let user = stack.pcs.enumerated().map { index, pc in
                symbolizer?.location(pc: pc, isReturnAddress: index > 0)
                    ?? Location(address: index > 0 ? pc - 1 : pc, lines: [FrameLine(function: "", offset: 0, file: "", line: 0)])
            }
            let kernel = options.kernelFrames ? ThreadStates.locations(state?.kernel ?? [], kallsyms: kallsyms) : []
            let truncation = [thread.stackNote, stack.truncation].compactMap { $0 }.joined(separator: "; ")
            threads.append(ThreadStack(tid: thread.tid, name: thread.name, locations: kernel + user,
                                       truncation: truncation.isEmpty ? nil : truncation,
                                       state: state.map { ThreadStates.namingRestartedCall($0.state, userLocations: user) }))
        }
        if options.kernelFrames {
            let blocked = states.contains { $0?.state.systemCall != nil }
            if blocked && states.allSatisfy({ $0?.kernel.isEmpty ?? true }) {
                statistics.kernelNote = "kernel stacks are unreadable: /proc/PID/task/TID/stack needs root"
            } else if !kernelNames.isEmpty && kallsyms == nil {
                statistics.kernelNote = "kernel frames have no addresses: /proc/kallsyms hides them (kernel.kptr_restrict)"
            }
        }
        statistics.symbolizeNanoseconds = monotonicNanoseconds() - clock

        let snapshot = Snapshot(pid: pid, threads: threads, failures: capture.failures,
                                memoryMapLines: capture.memoryMap.regions.map(\.line), wasStopped: capture.wasStopped)
        return (snapshot, statistics)
    }
}
