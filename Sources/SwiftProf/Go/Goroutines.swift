// A Go program's goroutines, read from its memory while every thread is stopped:
// runtime.allgs, each g's status and saved registers, and the bytes of each
// goroutine's stack, so the walks run after the program goes on.

/// A goroutine as copied while the process was stopped.
struct CapturedGoroutine {
    let id: UInt64
    let pc: UInt64
    let sp: UInt64
    /// A parked goroutine's saved pc was pushed by a call; a running one's is where it stopped.
    let leafIsReturnAddress: Bool
    var stack: StackCopy
    /// Its walk, when it was walked where its copy lay (a parked goroutine copied
    /// before the stop: the copy itself is not kept).
    var walk: GoStackWalk.Result?
    /// The bytes of its stack copied.
    var stackBytes = 0
    /// Why its stack could not be copied, when it could not.
    var note: String?
    /// What Go's tracebacks print in brackets: "chan receive", "syscall", "running"...
    var state = ""
    /// What Go's debug=2 adds after the state: ", 5 minutes", ", locked to thread".
    var detail = ""
    /// Its profiler labels.
    var labels: [String: String] = [:]
    /// The runtime prints its labels in its traceback header (GODEBUG tracebacklabels).
    var headerShowsLabels = false
}

struct GoroutineList {
    var goroutines: [CapturedGoroutine] = []
    /// Goroutines of the runtime itself, which Go's own profile leaves out too.
    var systemGoroutines = 0
    /// Entries of runtime.allgs not read: the stop window reached its bound first.
    var unread = 0
    /// Goroutines whose copy from before the stop was found unchanged while stopped.
    var copiedWithoutStop = 0
}

struct GoroutineReader {
    let memory: TargetMemory
    private var pid: Int32 { memory.processID }
    let layout: GoRuntimeLayout
    let module: GoModule
    let stackLimit: Int
    /// The walks' frame limit (--max-frames), and what the snapshot's walks share.
    var maxFrames = Int.max
    let cache = GoroutineStackCache()
    /// runtime.waitReasonStrings, read from the binary (empty when it is not there).
    var waitReasons: [String] = []
    /// How long the process may stay stopped while goroutines are read (--stop-timeout):
    /// past it, the rest of the list is left unread and said so.
    var budgetNanoseconds: UInt64 = .max

    // runtime2.go: _Gidle, _Grunning, _Gdead, _Gdeadextra (Go 1.26 and later: a dead g
    // kept for a C thread that may call into Go); _Gscan is a bit over them.
    private static let idle: UInt32 = 0, running: UInt32 = 2, syscall: UInt32 = 3, waiting: UInt32 = 4, dead: UInt32 = 6,
                       deadExtra: UInt32 = 11
    private static let scanBit: UInt32 = 0x1000
    /// A corrupt allgs must not make us read forever.
    private static let maximumGoroutines = 10_000_000

    /// Copies taken before the stop (readUnstopped).
    var unstopped = UnstoppedCopies()

    /// Copies by their place in runtime.allgs, which only grows (a dead g is reused,
    /// never freed): a g at the same place and address in the stop is the same g.
    /// An array, not a dictionary by address: at 100,000 goroutines the hashing and
    /// the moves of a growing table of large values were a third of a dump.
    struct UnstoppedCopies {
        var addresses: [UInt64] = []
        var copies: [UnstoppedCopy?] = []

        func copy(at index: Int, address: UInt64) -> UnstoppedCopy? {
            index < addresses.count && addresses[index] == address ? copies[index] : nil
        }
    }

    /// A parked goroutine copied while the program runs, and the fields of its g
    /// that must read the same once it is stopped for the copy to stand: a parked
    /// goroutine's stack does not change until it runs again or the GC moves it,
    /// and either changes its status or its saved registers and stack bounds.
    struct UnstoppedCopy {
        let fingerprint: Fingerprint
        var goroutine: CapturedGoroutine
    }

    /// A g's status, saved registers, stack bounds, id, wait reason and M.
    struct Fingerprint: Equatable {
        let status, schedSP, schedPC, syscallSP, syscallPC, stackHi, stackLo, goid, m: UInt64
        let waitReason: UInt8
    }

    private func fingerprint(_ g: ByteView) -> Fingerprint {
        Fingerprint(status: g.word(layout.status) & 0xffff_ffff, schedSP: g.word(layout.schedSP), schedPC: g.word(layout.schedPC),
                    syscallSP: g.word(layout.syscallSP), syscallPC: g.word(layout.syscallPC), stackHi: g.word(layout.stackHi),
                    stackLo: g.word(layout.stackHi - 8), goid: g.word(layout.goid), m: g.word(layout.m),
                    waitReason: g.byte(layout.waitReason))
    }

    /// runtime.allgs's entries, read in one go.
    private func allgs() -> Result<[UInt64], TargetError> {
        guard let slice = bytes(layout.allgs &+ module.bias, 16) else { return .failure(.noGoroutines(pid: pid, reason: "runtime.allgs is unreadable")) }
        let array = word(slice, 0), count = Int(clamping: word(slice, 8))
        guard count <= GoroutineReader.maximumGoroutines, let pointers = bytes(array, count * 8) else {
            return .failure(.noGoroutines(pid: pid, reason: "runtime.allgs does not hold a readable list (\(count) entries)"))
        }
        return .success((0..<count).map { word(pointers, $0 * 8) })
    }

    /// Every parked goroutine's g and stack, copied without a stop (the stop then
    /// only checks them); empty when the list cannot be read. Each stack is walked
    /// where it lies in the batch's buffer and only its walk kept: a parked
    /// goroutine's stack does not change while its g reads the same.
    func readUnstopped() -> UnstoppedCopies {
        guard case .success(let addresses) = allgs() else { return UnstoppedCopies() }
        var copies = UnstoppedCopies(addresses: addresses, copies: Array(repeating: nil, count: addresses.count))
        var stackRanges: [(index: Int, sp: UInt64, count: Int)] = []
        stackRanges.reserveCapacity(addresses.count)
        var known = KnownAnswers(showsLabels: tracebackShowsLabels)
        let recordBytes = gBytes
        for batch in GoroutineReader.batches(of: addresses.count) {
            let records = Ptrace.readMemory(memory, batch: addresses[batch].map { ($0, recordBytes) })
            for (offset, index) in batch.enumerated() {
                guard let g = records.range(offset), UInt32(truncatingIfNeeded: g.word(layout.status)) == GoroutineReader.waiting,
                      !isSystem(g, known: &known) else { continue }
                let placed = describe(g, status: GoroutineReader.waiting, threads: [], known: &known)
                guard placed.goroutine.note == nil else { continue }
                copies.copies[index] = UnstoppedCopy(fingerprint: fingerprint(g), goroutine: placed.goroutine)
                stackRanges.append((index, placed.goroutine.sp, placed.stackLength))
            }
        }
        for batch in GoroutineReader.batches(of: stackRanges.count) {
            let stacks = Ptrace.readMemory(memory, batch: stackRanges[batch].map { ($0.sp, $0.count) })
            for (offset, range) in stackRanges[batch].enumerated() {
                guard let stack = stacks.range(offset) else {
                    copies.copies[range.index] = nil  // read again in the stop
                    continue
                }
                let sp = range.sp
                copies.copies[range.index]!.goroutine.walk(in: module, maxFrames: maxFrames, cache: cache) { address in
                    address >= sp && address - sp < 1 << 32 ? stack.wholeWord(Int(address - sp)) : nil
                }
                copies.copies[range.index]!.goroutine.stackBytes = stack.count
            }
        }
        return copies
    }

    /// What the goroutines of one read share and is worked out once: whether a start
    /// function is the runtime's, the labels behind a labelMap pointer, and whether
    /// the runtime prints labels in its tracebacks; and the read's instant on the
    /// runtime's clock, one for every goroutine's wait.
    private struct KnownAnswers {
        var systemStarts: [UInt64: Bool] = [:]
        var labelSets: [UInt64: [String: String]] = [:]
        let showsLabels: Bool
        let now = monotonicNanoseconds()
    }

    /// Go's isSystemGoroutine for the g's start function, asked once a function.
    private func isSystem(_ g: ByteView, known: inout KnownAnswers) -> Bool {
        let startPC = g.word(layout.startPC)
        if let system = known.systemStarts[startPC] { return system }
        let system = isSystem(startPC: startPC)
        known.systemStarts[startPC] = system
        return system
    }

    /// The goroutine a g describes (placed, with its state, header words and labels),
    /// its stack not yet copied, and how many bytes of it to copy.
    private func describe(_ g: ByteView, status: UInt32, threads: [CapturedThread],
                          known: inout KnownAnswers) -> (goroutine: CapturedGoroutine, stackLength: Int) {
        var placed = place(g, status: status, threads: threads)
        placed.goroutine.state = stateName(status: status, waitReason: Int(g.byte(layout.waitReason)))
        placed.goroutine.detail = detail(g, status: status, now: known.now)
        placed.goroutine.labels = labels(g, known: &known.labelSets)
        placed.goroutine.headerShowsLabels = known.showsLabels
        return placed
    }

    /// The used parts of many stacks, read in batches; nil for one that could not be read.
    private func stacks(_ ranges: [(address: UInt64, count: Int)]) -> [[UInt8]?] {
        GoroutineReader.batches(of: ranges.count).flatMap { Ptrace.readMemory(memory, ranges: Array(ranges[$0])) }
    }

    /// Ranges a batch of reads asks for (process_vm_readv then takes 1024 a call).
    private static let batch = 4096

    /// The index ranges of the batches of `count` reads.
    private static func batches(of count: Int) -> [Range<Int>] {
        stride(from: 0, to: count, by: batch).map { $0..<min($0 + batch, count) }
    }

    /// The bytes of a g that are read: up to its last field looked at, not the whole
    /// record (in the stop, every byte counts at 100,000 goroutines).
    private var gBytes: Int {
        let last = ([layout.stackHi, layout.schedSP, layout.schedPC, layout.syscallSP, layout.syscallPC, layout.status,
                     layout.goid, layout.waitReason, layout.startPC, layout.m]
                    + [layout.waitSince, layout.lockedM, layout.labels].compactMap { $0 }).max() ?? 0
        return min(layout.gSize, last + 8)
    }

    func read(threads: [CapturedThread]) -> Result<GoroutineList, TargetError> {
        let addresses: [UInt64]
        switch allgs() {
        case .success(let list): addresses = list
        case .failure(let error): return .failure(error)
        }
        let count = addresses.count
        var list = GoroutineList()
        list.goroutines.reserveCapacity(count)
        let start = monotonicNanoseconds()
        // Two passes of batched reads: every g, then the used part of the stack of
        // each goroutine not copied before the stop (or changed since). One read
        // each took 8 us a goroutine.
        var kept: [(goroutine: CapturedGoroutine, stackLength: Int)] = []
        var known = KnownAnswers(showsLabels: tracebackShowsLabels)
        let recordBytes = gBytes
        for batch in GoroutineReader.batches(of: count) {
            if batch.lowerBound > 0, monotonicNanoseconds() - start > budgetNanoseconds {
                list.unread = count - batch.lowerBound
                break
            }
            let records = Ptrace.readMemory(memory, batch: addresses[batch].map { ($0, recordBytes) })
            for (offset, position) in batch.enumerated() {
                guard let g = records.range(offset) else { continue }
                let status = UInt32(truncatingIfNeeded: g.word(layout.status)) & ~GoroutineReader.scanBit
                if status == GoroutineReader.dead || status == GoroutineReader.deadExtra || status == GoroutineReader.idle { continue }
                if isSystem(g, known: &known) {
                    list.systemGoroutines += 1
                    continue
                }
                if let earlier = unstopped.copy(at: position, address: addresses[position]), earlier.fingerprint == fingerprint(g) {
                    list.goroutines.append(earlier.goroutine)
                    list.copiedWithoutStop += 1
                    continue
                }
                kept.append(describe(g, status: status, threads: threads, known: &known))
            }
        }
        for (entry, copy) in zip(kept, stacks(kept.map { ($0.goroutine.sp, $0.stackLength) })) {
            var goroutine = entry.goroutine
            if goroutine.note == nil {
                goroutine.stack = StackCopy(start: goroutine.sp, bytes: copy ?? [])
                goroutine.stackBytes = copy?.count ?? 0
                if copy == nil { goroutine.note = "its stack is unreadable" }
            }
            list.goroutines.append(goroutine)
        }
        return .success(list)
    }

    /// The way Go's traceback starts: from the system call it entered, else from the
    /// registers saved when it parked; a running one from its thread's registers. The
    /// goroutine with an empty stack copy, and how many bytes of its stack to copy
    /// (0 when there is a note instead).
    private func place(_ g: ByteView, status: UInt32, threads: [CapturedThread]) -> (goroutine: CapturedGoroutine, stackLength: Int) {
        let id = g.word(layout.goid), stackHi = g.word(layout.stackHi), stackLo = g.word(layout.stackHi - 8)
        var pc = g.word(layout.schedPC), sp = g.word(layout.schedSP), isReturnAddress = true
        if g.word(layout.syscallSP) != 0 {
            pc = g.word(layout.syscallPC)
            sp = g.word(layout.syscallSP)
        } else if status == GoroutineReader.running {
            let m = g.word(layout.m)
            let tid = bytes(m &+ UInt64(layout.mProcID), 8).map { word($0, 0) }
            guard let thread = threads.first(where: { UInt64($0.tid) == tid }), thread.registers.sp >= stackLo,
                  thread.registers.sp < stackHi else {
                return (CapturedGoroutine(id: id, pc: pc, sp: sp, leafIsReturnAddress: true, stack: StackCopy(start: sp, bytes: []),
                                          note: "running outside its own stack"), 0)
            }
            (pc, sp, isReturnAddress) = (thread.registers.pc, thread.registers.sp, false)
        }
        guard sp != 0, sp < stackHi else {
            return (CapturedGoroutine(id: id, pc: pc, sp: sp, leafIsReturnAddress: isReturnAddress,
                                      stack: StackCopy(start: sp, bytes: []), note: "saved sp is outside its stack"), 0)
        }
        return (CapturedGoroutine(id: id, pc: pc, sp: sp, leafIsReturnAddress: isReturnAddress, stack: StackCopy(start: sp, bytes: []),
                                  note: nil), Int(min(stackHi - sp, UInt64(stackLimit))))
    }

    /// Whether the runtime's tracebacks print labels (runtime.debug.tracebacklabels == 1).
    private var tracebackShowsLabels: Bool {
        guard let at = layout.tracebackLabels, let value = bytes(at &+ module.bias, 4) else { return false }
        return value == [1, 0, 0, 0]
    }

    /// The goroutine each thread runs now (runtime.m.curg, by m.procid), from the runtime's
    /// list of Ms; empty when the DWARF does not say where they are. A thread running no
    /// goroutine (an idle M, one in the scheduler) is not in it.
    func currentGoroutines() -> [Int32: UInt64] {
        guard let allm = layout.allm, let curg = layout.mCurG, let link = layout.mAllLink,
              let first = bytes(allm &+ module.bias, 8) else { return [:] }
        let span = max(layout.mProcID, curg, link) + 8
        var running: [Int32: UInt64] = [:]
        var m = word(first, 0)
        var hops = 0
        while m != 0, hops < GoroutineReader.maximumThreads, let fields = bytes(m, span) {
            let g = word(fields, curg)
            if g != 0 { running[Int32(truncatingIfNeeded: word(fields, layout.mProcID))] = g }
            m = word(fields, link)
            hops += 1
        }
        return running
    }

    private static let maximumThreads = 100_000

    /// The profiler labels of the goroutine at `g` (one read of its labels word; a label
    /// set is decoded once a pointer, `known`).
    func labels(ofGoroutineAt g: UInt64, known: inout [UInt64: [String: String]]) -> [String: String] {
        guard let at = layout.labels, let bytes = bytes(g &+ UInt64(at), 8) else { return [:] }
        return labelSet(at: word(bytes, 0), known: &known)
    }

    /// The labels a g points to (none when it points nowhere or they cannot be read).
    private func labels(_ g: ByteView, known: inout [UInt64: [String: String]]) -> [String: String] {
        guard let at = layout.labels else { return [:] }
        return labelSet(at: g.word(at), known: &known)
    }

    /// The labels of the goroutine at `g` if `sp` lies in its stack (runtime.stack is
    /// {lo, hi}): how a register that should hold the running g is checked; nil when not.
    func labels(ofGoroutineAt g: UInt64, runningOn sp: UInt64, known: inout [UInt64: [String: String]]) -> [String: String]? {
        guard let at = layout.labels, layout.stackHi >= 8, g != 0,
              let stack = bytes(g &+ UInt64(layout.stackHi - 8), 16), let word = bytes(g &+ UInt64(at), 8) else { return nil }
        let (lo, hi) = (self.word(stack, 0), self.word(stack, 8))
        guard lo < hi, lo <= sp, sp < hi else { return nil }
        return labelSet(at: self.word(word, 0), known: &known)
    }

    /// The labels behind a g's labels pointer, decoded once a pointer.
    private func labelSet(at pointer: UInt64, known: inout [UInt64: [String: String]]) -> [String: String] {
        guard pointer != 0 else { return [:] }
        if let labels = known[pointer] { return labels }
        let labels = (layout.labelsAreList ? labelList(at: pointer) : labelMap(at: pointer)) ?? [:]
        known[pointer] = labels
        return labels
    }

    /// Go 1.24 on: labelMap { Set { List []Label{Key, Value string} } }.
    private func labelList(at pointer: UInt64) -> [String: String]? {
        guard let header = bytes(pointer, 24) else { return nil }
        let list = word(header, 0), count = Int(clamping: word(header, 8))
        guard count <= GoroutineReader.maximumLabels, let entries = bytes(list, count * 32) else { return nil }
        var labels: [String: String] = [:]
        for index in 0..<count {
            guard let key = goString(word(entries, index * 32), word(entries, index * 32 + 8)),
                  let value = goString(word(entries, index * 32 + 16), word(entries, index * 32 + 24)) else { return nil }
            labels[key] = value
        }
        return labels
    }

    /// Up to Go 1.23: labelMap is a map[string]string, a pointer to the runtime's
    /// hmap (count at 0, B at 9, buckets at 16), whose buckets hold 8 entries each
    /// (tophash[8], keys at 8, values at 136, overflow at 264). Labels are never
    /// changed in place (a new map each time), so no growth is under way.
    private func labelMap(at pointer: UInt64) -> [String: String]? {
        guard let variable = bytes(pointer, 8), let hmap = bytes(word(variable, 0), 48) else { return nil }
        let count = Int(clamping: word(hmap, 0)), bucketBits = Int(hmap[9]), buckets = word(hmap, 16)
        guard count <= GoroutineReader.maximumLabels, bucketBits <= 8 else { return nil }
        var labels: [String: String] = [:]
        for index in 0..<(1 << bucketBits) {
            var bucket = buckets &+ UInt64(index * 272)
            var hops = 0
            while bucket != 0, hops < 16, let bytes = bytes(bucket, 272) {
                for slot in 0..<8 where bytes[slot] >= 5 {  // minTopHash: a live entry
                    guard let key = goString(word(bytes, 8 + 16 * slot), word(bytes, 16 + 16 * slot)),
                          let value = goString(word(bytes, 136 + 16 * slot), word(bytes, 144 + 16 * slot)) else { return nil }
                    labels[key] = value
                }
                bucket = word(bytes, 264)
                hops += 1
            }
        }
        return labels.count == count ? labels : nil
    }

    /// A Go string's bytes (as the target chose them: kept raw where not UTF-8).
    private func goString(_ pointer: UInt64, _ length: UInt64) -> String? {
        guard length <= 4096 else { return nil }
        if length == 0 { return "" }
        return bytes(pointer, Int(length)).map(RawBytes.decode)
    }

    private static let maximumLabels = 256

    /// goroutineheader's words after the status: how long a waiting goroutine (or one in
    /// a system call) has waited, in whole minutes from the runtime's waitsince, and
    /// whether it is locked to its thread. Go's nanotime is CLOCK_MONOTONIC, as ours.
    private func detail(_ g: ByteView, status: UInt32, now: UInt64) -> String {
        var words = ""
        // Now on the runtime's clock is the read's instant only in a live process: a core
        // does not record its instant, so how long its goroutines had waited is not said.
        if let at = layout.waitSince, memory.isLive, status == GoroutineReader.waiting || status == GoroutineReader.syscall {
            words += GoroutineHeader.waitedMinutes(since: g.word(at), now: now)
        }
        if let at = layout.lockedM, g.word(at) != 0 { words += ", locked to thread" }
        return words
    }

    /// goroutineheader's words: the status, or for a waiting goroutine its reason.
    private func stateName(status: UInt32, waitReason: Int) -> String {
        switch status {
        case 1: return "runnable"
        case 2: return "running"
        case 3: return "syscall"
        case 4: return waitReason > 0 && waitReason < waitReasons.count ? waitReasons[waitReason] : "waiting"
        case 8: return "copystack"
        case 9: return "preempted"
        default: return "status \(status)"
        }
    }

    /// Go's isSystemGoroutine: started by a runtime function other than runtime.main.
    /// (The finalizer goroutine counts as the runtime's, as Go counts it while idle.)
    private func isSystem(startPC: UInt64) -> Bool {
        guard let function = module.function(at: startPC) else { return false }
        let name = module.table.name(of: function)
        return name.hasPrefix("runtime.") && name != "runtime.main"
    }

    private func bytes(_ address: UInt64, _ count: Int) -> [UInt8]? { Ptrace.readMemory(memory, at: address, count: count) }

    private func word(_ bytes: [UInt8], _ offset: Int) -> UInt64 {
        offset >= 0 && offset + 8 <= bytes.count ? littleEndianWord(bytes, at: offset) : 0
    }
}

extension CapturedGoroutine {
    /// Walked with Go's table and recorded the way Go's runtime records it.
    /// `cache`: what the snapshot's earlier walks and frames worked out. Without
    /// `inlineFrames` (--no-inline): one frame a physical pc, its function's, not Go's
    /// pc a logical frame.
    func stack(in module: GoModule, maxFrames: Int, inlineFrames: Bool = true,
               cache: GoroutineStackCache = GoroutineStackCache()) -> ThreadStack {
        let walk = self.walk ?? walked(in: module, maxFrames: maxFrames, cache: cache) { stack.word(at: $0) }
        // Go records a leaf that is not a return address as pc + 1, so that every pc - 1 is inside its instruction.
        var physical = walk.pcs
        if !leafIsReturnAddress, !physical.isEmpty { physical[0] += 1 }
        let locations: [Location]
        if let known = cache.locations[physical] {
            locations = known
        } else {
            locations = inlineFrames ? module.runtimePCs(physical).map(module.runtimeFrame) : module.physicalFrames(physical)
            cache.locations[physical] = locations
        }
        var truncation: String?
        switch walk.end {
        case .outermost: truncation = nil
        case .truncated(let reason): truncation = reason
        case .leftGoCode(let next, _): truncation = "returns into non-Go code at \(hex(next))"
        }
        if let note { truncation = note }
        var thread = ThreadStack(tid: Int32(truncatingIfNeeded: id), name: state, locations: locations, truncation: truncation)
        thread.headerDetail = detail
        thread.labels = labels
        thread.headerShowsLabels = headerShowsLabels
        return thread
    }
}

extension CapturedGoroutine {
    /// Walks its stack, whose words `word` reads, and keeps the walk.
    mutating func walk(in module: GoModule, maxFrames: Int, cache: GoroutineStackCache, word: (UInt64) -> UInt64?) {
        walk = withoutActuallyEscaping(word) { word in walked(in: module, maxFrames: maxFrames, cache: cache, word: word) }
    }

    func walked(in module: GoModule, maxFrames: Int, cache: GoroutineStackCache,
                word: @escaping (UInt64) -> UInt64?) -> GoStackWalk.Result {
        var walker = GoStackWalk(module: module, word: word, threadStack: false)
        walker.steps = cache.steps
        return walker.walk(pc: pc, sp: sp, leafIsReturnAddress: leafIsReturnAddress, limit: maxFrames)
    }
}

/// What the walks of one goroutine snapshot share: each pc's walk step, and the
/// frames of each distinct stack (symbolized once, not once a goroutine).
final class GoroutineStackCache {
    let steps = GoWalkSteps()
    fileprivate var locations: [[UInt64]: [Location]] = [:]
}

/// What Go's debug=2 header says of a goroutine's wait (runtime/traceback.go,
/// goroutineheader).
public enum GoroutineHeader {
    /// ", N minutes" when a goroutine has waited a minute or more since `since`
    /// (runtime nanotime), whole minutes as Go divides them; nothing below a minute
    /// or when the runtime has not set it.
    public static func waitedMinutes(since: UInt64, now: UInt64) -> String {
        guard since != 0, now > since else { return "" }
        let minutes = (now - since) / 60_000_000_000
        return minutes >= 1 ? ", \(minutes) minutes" : ""
    }
}
