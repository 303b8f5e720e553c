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

    /// Unwinds a capture and reads its state.
    init(_ thread: CapturedThread, unwound: UnwoundStack, path: CapturePath, now: UInt64) {
        tid = thread.tid
        name = thread.name
        pcs = unwound.pcs
        let notes = [thread.stackNote, unwound.truncation].compactMap { $0 }
        truncation = notes.isEmpty ? nil : notes.joined(separator: "; ")
        let derived = ThreadStates.state(of: thread, now: now)
        state = derived?.state
        kernel = derived?.kernel ?? []
        self.path = path
    }

    /// What identical samples share: the same stack, kernel frames and state.
    struct Key: Hashable {
        let pcs: [UInt64]
        let kernel: [KernelFrame]
        let truncation: String?
        let state: String?
    }

    var key: Key { Key(pcs: pcs, kernel: kernel, truncation: truncation, state: state?.groupKey) }
}

/// Turns unwound samples into symbolized locations: each pc is looked up once
/// however many samples hold it; kernel frames get their kallsyms addresses.
final class StackSymbolizer {
    private let symbolizer: Symbolizer?
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
            return options.kernelFrames && options.kernelAddresses ? KallsymsCache.load(names) : nil
        }
        symbolizer = warmUp?.symbolizer(for: image.memoryMap)
            ?? Symbolizer(pid: pid, modules: image.symbolModules(), vdso: image.vdsoForSymbolizer, options: options.symbolize)
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

    /// Kernel frames first, then the user frames; and the state with a restarted call named.
    func stack(_ sample: ThreadSample) -> (locations: [Location], state: ThreadState?) {
        let symbolized = sample.pcs.enumerated().map { index, pc in
            let address = index > 0 ? pc - 1 : pc
            return goLocation(address) ?? symbolizer?.location(pc: pc, isReturnAddress: index > 0)
                ?? Location(address: address, lines: [FrameLine(function: "", offset: 0, file: "", line: 0)])
        }
        // A frame that was nothing but hidden thunks has no line left: it goes.
        let user = symbolized.filter { !$0.lines.isEmpty }
        let kernel = kernelFrames && !sample.kernel.isEmpty ? ThreadStates.locations(sample.kernel, kallsyms: kallsymsJob.value) : []
        return (kernel + user, sample.state.map { ThreadStates.namingRestartedCall($0, userLocations: user) })
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
        return ThreadStack(tid: sample.tid, name: sample.name, locations: locations, truncation: sample.truncation, state: state)
    }
}
