// `dump --core FILE`: a dead process read the way a live one is. The core gives
// what a stop would (each thread's registers, its memory); the same unwinder,
// Go reader and symbolizer then run over it, so a core and a live process of
// the same state print the same stacks.
import Glibc

/// What a core said besides its stacks, for the comments and for stderr.
public struct CoreStatistics: Sendable {
    public var path = ""
    public var processName = ""
    /// "zstd", "xz", "lz4", or nil for an uncompressed core.
    public var compression: String?
    public var signal: CoreSignal?
    /// Files the process had mapped that were not used: missing, or another build.
    public var missingFiles: [String] = []
    public var threads = 0
    public var nanoseconds: UInt64 = 0

    init(_ image: CoreImage, threads: Int, since started: UInt64) {
        path = image.core.path
        processName = image.core.processName
        compression = image.core.bytes.compression
        signal = image.core.signal
        missingFiles = image.missingFiles
        self.threads = threads
        nanoseconds = monotonicNanoseconds() - started
    }
}

extension Profiler {
    public static func core(path: String, files: CoreFileOptions = CoreFileOptions(),
                            options: SnapshotOptions = SnapshotOptions()) throws(CoreError) -> (Snapshot, CoreStatistics) {
        let started = monotonicNanoseconds()
        let (image, threads) = try openCore(path: path, files: files, stackBytes: options.capture.stackBytes)
        let core = image.core
        var samples = unwound(threads, image: image.image, options: options, now: 0)
        for index in samples.indices { samples[index].state = coreState(threads[index].registers) }
        var symbolizeOptions = options
        symbolizeOptions.kernelFrames = false  // a core has no kernel stacks
        let symbolizer = StackSymbolizer(pid: core.processID, image: image.image, samples: samples, options: symbolizeOptions)
        // In the core's own order: the thread that took the signal first, as the kernel writes it.
        let stacks = samples.map(symbolizer.threadStack)
        return (Snapshot(pid: core.processID, threads: stacks, memoryMapLines: image.memoryMap.regions.map(\.line)),
                CoreStatistics(image, threads: stacks.count, since: started))
    }

    /// Every goroutine of a Go program's core, as `goroutines(pid:)` reads a live one.
    public static func coreGoroutines(path: String, files: CoreFileOptions = CoreFileOptions(),
                                      options: SnapshotOptions = SnapshotOptions()) throws(CoreError) -> (Snapshot, GoroutineStatistics, CoreStatistics) {
        let started = monotonicNanoseconds()
        let (image, threads) = try openCore(path: path, files: files, stackBytes: options.capture.stackBytes)
        let reader: GoroutineReader
        switch goroutineReader(image: image.image, stackLimit: options.capture.stackBytes) {
        case .success(let made): reader = made
        case .failure(.notGo): throw CoreError(.malformed, "\(path): not the core of a Go program (no .gopclntab in any of its objects)")
        case .failure(let problem): throw CoreError(problem.isUnreadable ? .unreadable : .malformed, problem.description)
        }
        let list: GoroutineList
        switch reader.read(threads: threads) {
        case .success(let read): list = read
        case .failure(let error): throw CoreError(.malformed, "\(path): \(error)")
        }
        let (stacks, goroutineStatistics) = goroutineStacks(list, module: reader.module, options: options)
        return (Snapshot(pid: image.core.processID, threads: stacks, memoryMapLines: image.memoryMap.regions.map(\.line)),
                goroutineStatistics, CoreStatistics(image, threads: threads.count, since: started))
    }

    /// Every async task of a Swift program's core, as `tasks(pid:)` reads a live one:
    /// the same scan and the same reflection library, over the core's memory.
    public static func coreTasks(path: String, files: CoreFileOptions = CoreFileOptions(),
                                 options: SnapshotOptions = SnapshotOptions()) throws(CoreError) -> (Snapshot, TaskStatistics, CoreStatistics) {
        let started = monotonicNanoseconds()
        let (image, threads) = try openCore(path: path, files: files, stackBytes: options.capture.stackBytes)
        let memory = TargetMemory.core(image.memory)
        var statistics = TaskStatistics()
        let stacks: [ThreadStack]
        do {
            let runtime = try TaskRuntime(memoryMap: image.memoryMap, image: image.image, options: options.symbolize)
            let readout = TaskReadout(memory: memory, map: image.memoryMap, runtime: runtime, budget: .max)
            stacks = try taskStacks(readout, runtime: runtime, memory: memory, options: options, statistics: &statistics) { threads }
        } catch {
            throw CoreError(.malformed, "\(path): \(error)")
        }
        statistics.nanoseconds = monotonicNanoseconds() - started
        return (Snapshot(pid: image.core.processID, threads: stacks, memoryMapLines: image.memoryMap.regions.map(\.line)),
                statistics, CoreStatistics(image, threads: threads.count, since: started))
    }

    /// The core read, its files found, and each thread as a capture would have taken it.
    private static func openCore(path: String, files: CoreFileOptions, stackBytes: Int) throws(CoreError) -> (CoreImage, [CapturedThread]) {
        let core = try CoreFile.read(path: path)
        let image = try CoreImage(core: core, files: files)
        let threads = core.threads.map { thread in
            let (stack, note) = Ptrace.copyStack(.core(image.memory), sp: thread.registers.sp, map: image.memoryMap, limit: stackBytes)
            // The core keeps no thread names: the process's (its main thread's) for the main thread.
            return CapturedThread(tid: thread.tid, name: thread.tid == core.processID ? core.processName : "",
                                  registers: thread.registers, stack: stack, stackNote: note)
        }
        return (image, threads)
    }

    /// What a core tells of a thread's state: only the system call it was in, from its
    /// registers (orig_rax and the restart code in rax, with the arguments still in
    /// rdi rsi rdx r10 r8 r9); no state letter, no wchan.
    static func coreState(_ registers: RegisterSet) -> ThreadState {
        var state = ThreadState(code: ThreadState.notRecorded)
        if let number = registers.interruptedSyscall {
            // rdi rsi rdx r10 r8 r9
            state.systemCall = ThreadStates.systemCall(number, arguments: [5, 4, 1, 10, 8, 9].map { registers.values[$0] })
        }
        return state
    }
}
