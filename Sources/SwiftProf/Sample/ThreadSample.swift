import CSwiftProf

// One thread, captured and unwound but not yet symbolized: what a sampling
// run keeps per sample (symbolizing is done once, at the end).

struct ThreadSample {
    var tid: Int32
    var name: String
    /// Leaf first, as the unwinder returns them.
    var pcs: [UInt64]
    var truncation: String?
    var state: ThreadState?
    /// From /proc, innermost first; empty when unreadable or running.
    var kernel: [KernelFrame]
    var path: CapturePath
    /// Where a Swift job's async callers are, read with the sample (AsyncCallers).
    var asyncChains: AsyncChains
    /// The profiler labels of the goroutine the thread ran, read with the sample.
    var goLabels: [String: String] = [:]
    /// Off a CPU at its tick though runnable: waiting for one (the switch records say
    /// so; without them a runnable thread is taken as running). Not part of `key`:
    /// the timeline shows it, profiles count the place alike.
    var waitingForCPU = false

    /// Unwinds a capture and reads its state; with `image`, the async callers of a
    /// Swift job too (read now: its contexts change once it runs on).
    /// `asyncChains`: read already (while the thread was stopped).
    init(_ thread: CapturedThread, unwound: UnwoundStack, path: CapturePath, now: UInt64, image: TargetImage? = nil,
         maxFrames: Int = UnwindOptions().maxFrames, asyncChains: AsyncChains? = nil) {
        tid = thread.tid
        name = thread.name
        pcs = unwound.pcs
        self.asyncChains = asyncChains ?? image.map { AsyncChains(unwound, stack: thread.stack, image: $0, limit: maxFrames) } ?? AsyncChains()
        let notes = [thread.stackNote, unwound.truncation].compactMap { $0 }
        truncation = notes.isEmpty ? nil : notes.joined(separator: "; ")
        let derived = ThreadStates.state(of: thread, now: now)
        state = derived?.state
        kernel = derived?.kernel ?? []
        self.path = path
    }

    /// Complete, or cut only by the depth limit (UnwoundStack's).
    var isAsGoodAsAStop: Bool { UnwoundStack.isAsGoodAsAStop(truncation: truncation) }

    /// What identical samples share: the same stack, async callers, kernel frames and state.
    struct Key: Hashable {
        let pcs: [UInt64]
        let asyncChains: AsyncChains
        let kernel: [KernelFrame]
        let truncation: String?
        let state: String?
        let goLabels: [String: String]
    }

    var key: Key {
        Key(pcs: pcs, asyncChains: asyncChains, kernel: kernel, truncation: truncation, state: state?.groupKey, goLabels: goLabels)
    }
}

/// Turns unwound samples into symbolized locations: each pc is looked up once
/// however many samples hold it; kernel frames get their kallsyms addresses.
final class StackSymbolizer {
    private let symbols: ProcessSymbols
    private var symbolizer: Symbolizer? { symbols.symbolizer }
    private let image: TargetImage
    private var goLocations: [UInt64: Location] = [:]
    /// Loaded on its own thread while user frames are symbolized.
    private let kallsymsJob: BackgroundJob<Kallsyms?>
    private let kernelFrames: Bool
    private let kernelAddresses: Bool
    /// --no-inline: Go frames too are one line each, as libdw's are.
    private let inlineFrames: Bool
    private let kernelNames: Set<String>
    private let unreadable: Bool

    init(pid: Int32, image: TargetImage, samples: [ThreadSample], options: SnapshotOptions, warmUp: SymbolizerWarmUp? = nil) {
        self.image = image
        kernelFrames = options.kernelFrames
        kernelAddresses = options.kernelAddresses
        inlineFrames = options.symbolize.inlineFrames
        let names = Set(samples.flatMap { $0.kernel.map(\.function) })
        kernelNames = names
        kallsymsJob = BackgroundJob {
            // At the lowest priority: on a small machine it must not take a core from
            // the target's own threads.
            _ = sp_set_thread_nice(19)
            guard options.kernelFrames && options.kernelAddresses else { return nil }
            if let shared = image.shared { return shared.kallsyms(names, load: KallsymsCache.load) }
            return KallsymsCache.load(names)
        }
        symbols = ProcessSymbols(image: image) {
            warmUp?.symbolizer(for: image.memoryMap)
                ?? Symbolizer(pid: pid, modules: image.symbolModules(), vdso: image.vdsoForSymbolizer, options: options.symbolize)
        }
        unreadable = samples.contains { $0.state?.systemCall != nil } && samples.allSatisfy { $0.kernel.isEmpty }
    }

    /// Why kernel frames are missing or have no addresses, when they are.
    var kernelNote: String? {
        guard kernelFrames else { return nil }
        if unreadable { return "kernel stacks are unreadable: /proc/PID/task/TID/stack needs root" }
        if kernelAddresses && !kernelNames.isEmpty && kallsymsJob.value == nil {
            return "kernel frames have no addresses: /proc/kallsyms hides them (kernel.kptr_restrict)"
        }
        return nil
    }

    /// With a symbolizer already made (the task reader's): user frames only.
    init(symbolizer: Symbolizer, image: TargetImage, options: SnapshotOptions) {
        self.image = image
        symbols = ProcessSymbols(image: image, symbolizer: symbolizer)
        kernelFrames = false
        kernelAddresses = false
        inlineFrames = options.symbolize.inlineFrames
        kernelNames = []
        kallsymsJob = BackgroundJob { nil }
        unreadable = false
    }

    /// Kernel frames first, then the user frames (a Swift job's async callers in, after
    /// its innermost async function); and the state with a restarted call named.
    func stack(_ sample: ThreadSample) -> (locations: [Location], state: ThreadState?) {
        let (user, _) = userStack(sample)
        let kernel = kernelFrames && !sample.kernel.isEmpty ? ThreadStates.locations(sample.kernel, kallsyms: kallsymsJob.value) : []
        return (kernel + user, sample.state.map { ThreadStates.namingRestartedCall($0, userLocations: user) })
    }

    /// A thread running a Swift job, as its task's record: its frames up to the last
    /// of its task's async callers, without the executor's below; nil when the
    /// thread shows no async callers.
    func taskStack(_ sample: ThreadSample) -> [Location]? {
        let (user, asyncEnd) = userStack(sample)
        return asyncEnd.map { Array(user[..<$0]) }
    }

    /// Why a sample's stack ends early: its walk's reason, or, for a Swift job whose
    /// task's async callers could not be read, that they are missing.
    func truncation(_ sample: ThreadSample) -> String? {
        guard image.hasSwiftConcurrency, sample.asyncChains.stitched(sample.pcs, isAsync: isAsync(sample.pcs)) == nil,
              sample.pcs.indices.contains(where: isAsync(sample.pcs)) else { return sample.truncation }
        return [sample.truncation, Self.asyncCallersMissing].compactMap { $0 }.joined(separator: "; ")
    }

    static let asyncCallersMissing = "async callers not read: the task ran on and reused its contexts before they were read"

    /// The user frames, and how many of them end with the async callers (nil: none).
    private func userStack(_ sample: ThreadSample) -> (locations: [Location], asyncEnd: Int?) {
        var pcs = sample.pcs
        var asyncCallers: Range<Int>?
        if let stitched = sample.asyncChains.stitched(sample.pcs, isAsync: isAsync(sample.pcs)) {
            (pcs, asyncCallers) = (stitched.pcs, stitched.asyncRange)
        }
        var user: [Location] = []
        var asyncEnd: Int?
        for (index, pc) in pcs.enumerated() {
            if let asyncCallers, index == asyncCallers.upperBound { asyncEnd = user.count }
            let address = index > 0 ? pc - 1 : pc
            var location = goLocation(address) ?? symbols.location(pc: pc, isReturnAddress: index > 0)
                ?? Location(address: address, lines: [FrameLine(function: "", offset: 0, file: "", line: 0)])
            if asyncCallers?.contains(index) == true { location.isAsyncCaller = true }
            // A frame that was nothing but hidden thunks has no line left: it goes; so
            // does the runtime's task completion, where every task's chain ends.
            if location.lines.isEmpty || (asyncCallers?.last == index && TaskInfo.isCompletion(location)) { continue }
            user.append(location)
        }
        if let asyncCallers, asyncCallers.upperBound >= pcs.count { asyncEnd = user.count }
        // Hidden thunks never leave a stack with no frame (a walk cut short in one): shown then.
        if user.isEmpty, let symbolizer, !pcs.isEmpty {
            user = pcs.enumerated().map { index, pc in symbolizer.locationShowingThunks(pc: pc, isReturnAddress: index > 0) }
            asyncEnd = nil
        }
        return (user, asyncEnd)
    }

    /// Whether the function of frame `index` of `pcs` is a Swift async function.
    private func isAsync(_ pcs: [UInt64]) -> (_ index: Int) -> Bool {
        { [symbols] index in symbols.symbolizer?.isSwiftAsyncFunction(at: index > 0 ? pcs[index] - 1 : pcs[index]) ?? false }
    }

    /// The task metadata a sample's task must start with (nil: not found).
    private lazy var taskMetadata: UInt64? = symbolizer?
        .address(ofSymbol: TaskRuntime.metadataSymbol, inModuleEndingWith: TaskRuntime.concurrencyLibrary)
        .flatMap { Ptrace.readMemory(image.memory, at: $0, count: 8) }
        .map { littleEndianWord($0, at: 0) }

    /// The pprof labels of the Swift task a sample's thread ran (task_id, task_name),
    /// as Go labels a goroutine's samples; empty when it ran none.
    func taskLabels(_ sample: ThreadSample) -> [String: String] {
        guard !sample.asyncChains.isEmpty, let task = sample.asyncChains.task(sample.pcs, isAsync: isAsync(sample.pcs)),
              task.isa == taskMetadata else { return [:] }
        return task.labels
    }

    /// Go code is named from Go's own table (see GoPclntab).
    private func goLocation(_ address: UInt64) -> Location? {
        if let cached = goLocations[address] { return cached }
        guard let go = image.goCode(containing: address), let lines = go.frameLines(at: address) else { return nil }
        let location = Location(address: address, moduleBias: go.bias, module: go.path,
                                lines: inlineFrames ? lines : [GoModule.physicalLine(lines)])
        goLocations[address] = location
        return location
    }

    func threadStack(_ sample: ThreadSample) -> ThreadStack {
        let (locations, state) = stack(sample)
        var thread = ThreadStack(tid: sample.tid, name: sample.name, locations: locations, truncation: truncation(sample), state: state)
        thread.labels = taskLabels(sample)
        return thread
    }
}
