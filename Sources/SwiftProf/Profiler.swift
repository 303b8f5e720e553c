// The pipeline of one snapshot: capture (target stopped), then unwind and
// symbolize the copies (target running), then hand back plain values.

public struct SnapshotOptions: Sendable {
    public var capture = CaptureOptions()
    public var unwind = UnwindOptions()
    public var symbolize = SymbolizeOptions()

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
        let vdso = capture.memoryMap.regions.first { $0.path == "[vdso]" }
        let symbolizer = Symbolizer(pid: pid, modules: image.symbolModules(), vdso: vdso, options: options.symbolize)
        var threads: [ThreadStack] = []
        for (thread, stack) in zip(capture.threads, unwound) {
            let locations = stack.pcs.enumerated().map { index, pc in
                symbolizer?.location(pc: pc, isReturnAddress: index > 0)
                    ?? Location(address: index > 0 ? pc - 1 : pc, lines: [FrameLine(function: "", offset: 0, file: "", line: 0)])
            }
            let truncation = [thread.stackNote, stack.truncation].compactMap { $0 }.joined(separator: "; ")
            threads.append(ThreadStack(tid: thread.tid, name: thread.name, locations: locations,
                                       truncation: truncation.isEmpty ? nil : truncation))
        }
        statistics.symbolizeNanoseconds = monotonicNanoseconds() - clock

        let snapshot = Snapshot(pid: pid, threads: threads, failures: capture.failures,
                                memoryMapLines: capture.memoryMap.regions.map(\.line), wasStopped: capture.wasStopped)
        return (snapshot, statistics)
    }
}
