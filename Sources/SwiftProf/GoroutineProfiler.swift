// `dump --goroutines`: every goroutine of a Go program, parked ones too, as
// Go's own /debug/pprof/goroutine lists them. The goroutine list and stacks
// must be of one instant (a running program moves and frees goroutine stacks),
// so every thread is stopped while they are copied, as with --consistent; for
// at most --stop-timeout of reading, after which the rest is reported unread.
import Glibc

public struct GoroutineStatistics: Sendable {
    public var goroutines = 0
    /// Left out, as Go's profile leaves them out: started by the runtime itself.
    public var systemGoroutines = 0
    public var stopWindowNanoseconds: UInt64 = 0
    public var stackBytes = 0
    /// Goroutines left unread when the stop window reached --stop-timeout.
    public var unreadGoroutines = 0
    /// Parked goroutines copied before the stop and found unchanged during it.
    public var copiedWithoutStop = 0
}

extension Profiler {
    public static func goroutines(pid: Int32, options: SnapshotOptions = SnapshotOptions())
        throws(TargetError) -> (Snapshot, GoroutineStatistics) {
        try TargetPreflight.check(pid: pid)
        let memoryMap: MemoryMap
        do { memoryMap = try MemoryMap.read(pid: pid) } catch { throw TargetPreflight.vanished(pid: pid, error) }
        let image = TargetImage(pid: pid, memoryMap: memoryMap)
        var captureOptions = options.capture
        captureOptions.readThreadState = false
        var reader: GoroutineReader
        switch goroutineReader(image: image, stackLimit: captureOptions.stackBytes) {
        case .success(let made): reader = made
        case .failure(let problem): throw .noGoroutines(pid: pid, reason: problem.description)
        }
        reader.budgetNanoseconds = captureOptions.stopTimeoutNanoseconds
        reader.maxFrames = options.unwind.maxFrames
        // Parked goroutines copied while the program runs; the stop checks them.
        reader.unstopped = reader.readUnstopped()
        let (capture, listed) = try TracerThread.run { () throws(TargetError) -> (Capture, Result<GoroutineList, TargetError>) in
            try StopTheWorld(pid: pid, options: captureOptions).run(whileStopped: reader.read)
        }
        let list = try listed.get()
        var (stacks, statistics) = goroutineStacks(list, module: reader.module, options: options, cache: reader.cache)
        statistics.stopWindowNanoseconds = capture.stopWindowNanoseconds
        statistics.unreadGoroutines = list.unread
        statistics.copiedWithoutStop = list.copiedWithoutStop
        var failures = capture.failures
        if list.unread > 0 {
            // Not a thread's failure, but the same outcome: an incomplete profile (exit status 1).
            failures.append(ThreadFailure(tid: 0, reason: "\(list.unread) of runtime.allgs's \(list.unread + list.goroutines.count + list.systemGoroutines) "
                                          + "goroutines not read: the process was let go after --stop-timeout "
                                          + "(\(captureOptions.stopTimeoutNanoseconds / 1_000_000) ms)"))
        }
        let snapshot = Snapshot(pid: pid, threads: stacks, failures: failures,
                                memoryMapLines: capture.memoryMap.documentLines(pid: pid), wasStopped: capture.wasStopped)
        return (snapshot, statistics)
    }

    /// Whether `pid` runs Go code: an executable mapping of it has Go's function table.
    public static func isGoProgram(pid: Int32) -> Bool {
        guard let memoryMap = try? MemoryMap.read(pid: pid) else { return false }
        let image = TargetImage(pid: pid, memoryMap: memoryMap)
        return memoryMap.regions.contains { $0.isExecutable && image.goModule(mapping: $0.start) != nil }
    }

    /// What /proc says before anything is asked of the target: it exists, is not a
    /// zombie or a kernel thread, and no other tracer holds it.
    public static func checkTarget(pid: Int32) throws(TargetError) { try TargetPreflight.check(pid: pid) }

    /// A reader of the goroutines of the Go program in `image` (a live process's or a
    /// core's): its Go executable, and where its runtime keeps goroutines, from the
    /// executable's DWARF.
    static func goroutineReader(image: TargetImage, stackLimit: Int) -> Result<GoroutineReader, GoRuntimeProblem> {
        guard let (region, module) = image.memoryMap.regions.lazy.filter(\.isExecutable)
            .compactMap({ region in image.goModule(mapping: region.start).map { (region, $0) } }).first else {
            return .failure(.notGo)
        }
        let descriptor = (image.module(containing: region.start)?.image.source as? MappedFile)?.duplicateDescriptor() ?? -1
        guard descriptor >= 0 else { return .failure(.cannotOpen(module.path)) }
        defer { _ = close(descriptor) }
        switch GoRuntimeLayout.read(descriptor: descriptor) {
        case .success(let layout):
            var reader = GoroutineReader(memory: image.memory, layout: layout, module: module, stackLimit: stackLimit)
            if let reasons = layout.waitReasonStrings {
                reader.waitReasons = module.table.staticStrings(at: reasons, limit: 64)
            }
            return .success(reader)
        case .failure(let problem):
            return .failure(.layout(path: module.path, problem: "\(problem)"))
        }
    }

    /// The goroutines read, walked and named as Go records them, in id order, and what
    /// the list says of them.
    static func goroutineStacks(_ list: GoroutineList, module: GoModule, options: SnapshotOptions,
                                cache: GoroutineStackCache = GoroutineStackCache()) -> ([ThreadStack], GoroutineStatistics) {
        let goroutines = list.goroutines
        let stacks = goroutines.indices.sorted { goroutines[$0].id < goroutines[$1].id }.map {
            goroutines[$0].stack(in: module, maxFrames: options.unwind.maxFrames, inlineFrames: options.symbolize.inlineFrames, cache: cache)
        }
        var statistics = GoroutineStatistics()
        statistics.goroutines = stacks.count
        statistics.systemGoroutines = list.systemGoroutines
        statistics.stackBytes = list.goroutines.reduce(0) { $0 + $1.stackBytes }
        return (stacks, statistics)
    }
}

/// Why a program's goroutines cannot be read at all.
enum GoRuntimeProblem: Error, CustomStringConvertible {
    case notGo
    case cannotOpen(String)
    case layout(path: String, problem: String)

    /// The executable could not be opened (not a problem of its contents).
    var isUnreadable: Bool {
        if case .cannotOpen = self { return true }
        return false
    }

    var description: String {
        switch self {
        case .notGo: return "it is not a Go program (no .gopclntab in any of its objects)"
        case .cannotOpen(let path): return "\(path) cannot be opened"
        case .layout(let path, let problem): return "\(path): \(problem)"
        }
    }
}
