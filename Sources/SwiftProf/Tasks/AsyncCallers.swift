// The async callers of a thread running a Swift job. A thread's own stack ends at
// the job's partial function, called by the executor (swift_job_run); the functions
// that awaited it are not on any thread's stack but in the task's async contexts,
// each of which starts with {Parent context, ResumeParent function}. Swift's own
// backtracer continues a stack that way from the innermost async frame's context.
//
// Where a frame's context is: in r14 (the swiftasync register, callee-saved, so
// libunwind restores it for every frame), and, in a funclet with an extended frame
// (push rbp; push r14; lea 8(rsp), rbp), also 24 bytes below its CFA (what the
// backtracer reads at fp - 8). An optimized funclet that calls a synchronous
// function often has no frame pointer at all, so both are tried. A context is only
// believed when its chain of parents, in writable memory, ends at the task's first
// context (a null parent) whose ResumeParent is the runtime's task completion.
//
// The chains are read when the sample is taken (a running task's contexts are freed
// and reused as it goes on); which frame is async is decided later, by its symbol.
//
// Which task the chain is: the task object lies just before its first context
// (AsyncTask, then fragments whose presence and sizes vary: child, group child,
// name, executor preference, a future's result, then the context prefix). The
// nearest object below the first context whose first word points into the
// concurrency runtime and whose header is a live task's is taken for it; its first
// word is checked against the task metadata once names are known.

struct AsyncChains: Hashable, Sendable {
    /// By frame of the walk: the async callers its context leads to, where one does.
    /// (Their content, not the contexts' addresses, so that samples of the same calls
    /// add up.)
    var frames: [Int: AsyncChain] = [:]

    var isEmpty: Bool { frames.isEmpty }

    init() {}

    /// The chains of the contexts `unwound`'s frames may hold; empty when the walk
    /// recorded no frame slots (no Swift concurrency in the process).
    init(_ unwound: UnwoundStack, stack: StackCopy, image: TargetImage, limit: Int) {
        guard !unwound.frameSlots.isEmpty else { return }
        let memory = image.memory.keepingPages
        var read: [UInt64: AsyncChain?] = [:]
        for (index, slots) in unwound.frameSlots.enumerated() {
            // Past the runtime's executor, with a chain found above it, no frame is the
            // innermost async one: the dispatch and thread frames below are not read.
            if !frames.isEmpty, unwound.pcs.indices.contains(index),
               image.concurrencyRuntime.contains(where: { $0.isExecutable && $0.contains(unwound.pcs[index]) }) { break }
            var candidates: [UInt64] = []
            if let register = slots.asyncRegister { candidates.append(register) }
            if slots.cfa > 24, let saved = stack.word(at: slots.cfa - 24) { candidates.append(saved) }
            for context in candidates {
                if read[context] == nil {
                    read[context] = Self.chain(from: context, image: image, memory: memory, limit: limit)
                        .map { AsyncChain(callers: $0.callers, task: TaskIdentity(firstContext: $0.first, image: image, memory: memory)) }
                }
                if let chain = read[context] ?? nil {
                    frames[index] = chain
                    break
                }
            }
        }
    }

    /// The callers from `context` up and the task's first context, or nil when it is
    /// not the head of a task's chain.
    private static func chain(from context: UInt64, image: TargetImage, memory: TargetMemory, limit: Int) -> (callers: [UInt64], first: UInt64)? {
        var callers: [UInt64] = []
        var next = context
        while callers.count < limit {
            guard next & 0xf == 0, image.memoryMap.region(containing: next)?.isWritable == true,
                  let bytes = Ptrace.readMemory(memory, at: next, count: 16) else { return nil }
            let parent = littleEndianWord(bytes, at: 0), resume = littleEndianWord(bytes, at: 8)
            guard image.isExecutable(resume) else { return nil }
            callers.append(resume)
            if parent == 0 {
                return image.concurrencyRuntime.contains { $0.isExecutable && $0.contains(resume) } ? (callers, next) : nil
            }
            next = parent
        }
        return nil
    }

    /// The innermost async frame of `pcs` whose context leads to a chain (`isAsync`
    /// says, by a pc's symbol, whether it is an async function), and that chain.
    private func innermost(_ pcs: [UInt64], isAsync: (_ index: Int) -> Bool) -> (index: Int, chain: AsyncChain)? {
        for index in pcs.indices {
            if let chain = frames[index], isAsync(index) { return (index, chain) }
        }
        return nil
    }

    /// The task whose chain the innermost async frame of `pcs` continues with.
    func task(_ pcs: [UInt64], isAsync: (_ index: Int) -> Bool) -> TaskIdentity? {
        frames.isEmpty ? nil : innermost(pcs, isAsync: isAsync)?.chain.task
    }

    /// The stack with the async callers in: the frames up to the innermost async one,
    /// then its callers (each as its resume function's entry + 1, read as a return
    /// address), then the frames from the first one past the async ones (the executor).
    func stitched(_ pcs: [UInt64], isAsync: (_ index: Int) -> Bool) -> (pcs: [UInt64], asyncRange: Range<Int>)? {
        guard !frames.isEmpty, let (index, chain) = innermost(pcs, isAsync: isAsync) else { return nil }
        var resume = index + 1
        while resume < pcs.count && isAsync(resume) { resume += 1 }
        let spliced = Array(pcs[...index]) + chain.callers.map { $0 + 1 } + pcs[resume...]
        return (spliced, (index + 1)..<(index + 1 + chain.callers.count))
    }
}

/// Where a context leads: its callers' resume functions, innermost first, the
/// runtime's task completion last; and the task they belong to, where it was found.
struct AsyncChain: Hashable, Sendable {
    var callers: [UInt64]
    var task: TaskIdentity?
}

/// The task a chain belongs to, as read with the sample: its first word (to be
/// checked against the task metadata once names are known), id and name.
struct TaskIdentity: Hashable, Sendable {
    let isa: UInt64
    let id: UInt64
    let name: String?

    /// How far before its first context a task object may start.
    static let window = 1024

    /// The task whose first context is `firstContext`; nil when none is found there.
    init?(firstContext: UInt64, image: TargetImage, memory: TargetMemory) {
        guard let region = image.memoryMap.region(containing: firstContext) else { return nil }
        let start = max(region.start, firstContext &- UInt64(Self.window)) & ~0xf
        guard firstContext > start, let bytes = Ptrace.readMemory(memory, at: start, count: Int(firstContext - start)) else { return nil }
        var offset = bytes.count - TaskHeader.size
        offset -= offset % 16
        while offset >= 0 {
            let isa = littleEndianWord(bytes, at: offset)
            if image.concurrencyRuntime.contains(where: { $0.contains(isa) }) {
                let header = TaskHeader(Array(bytes[offset..<(offset + TaskHeader.size)]))
                if header.isTaskJob, !header.isDeiniting, header.id != 0, !header.hasReturned {
                    self.isa = isa
                    id = header.id
                    name = TaskRecords.read(memory: memory, task: start + UInt64(offset)).name
                    return
                }
            }
            offset -= 16
        }
        return nil
    }

    /// pprof labels, as Go's profiles carry a goroutine's.
    var labels: [String: String] {
        var labels = ["task_id": String(id)]
        if let name { labels["task_name"] = name }
        return labels
    }
}
