// Go's mutex profile of a native program: the time threads wait for a glibc
// mutex, charged to the stack of the thread that held it at that moment (as Go
// charges the unlocker). At each tick, every thread blocked in futex(2) has the
// word it sleeps on read once more: a mutex keeps its owner's thread id in
// `__owner` (offset 8), and that thread's place at the same tick is where the
// wait is charged. Whether the sleeper waited for a mutex is known once its stack
// is symbolized, at the end (its innermost primitive is glibc's lock); a holder
// that is not a thread of the process (or no longer there) is charged as unknown.

struct MutexRecorder {
    private var samples: [ThreadSample] = []
    private var slots: [ThreadSample.Key: Int] = [:]
    /// Each thread's place at the latest tick.
    private var current: [Int32: Int] = [:]
    private struct Charge: Hashable {
        var waiter: Int
        var holder: Int?
    }
    private var charges: [Charge: (ticks: Int, captures: Int)] = [:]
    private let memory: TargetMemory

    init(memory: TargetMemory) { self.memory = memory }

    mutating func add(_ tick: Sampler.Tick) {
        for sample in tick.places { current[sample.tid] = slot(sample) }
        let fresh = Set(tick.samples.map(\.tid))
        for tid in tick.samples.map(\.tid) + tick.reused {
            guard let waiter = current[tid], let call = samples[waiter].state?.systemCall, call.name == "futex",
                  ThreadWaits.sleepsOnWord(call), let word = call.arguments.first.flatMap(parseHex) else { continue }
            var holder: Int?
            if let bytes = Ptrace.readMemory(memory, at: word &+ 8, count: 4), bytes.count == 4 {
                let owner = Int32(bitPattern: UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24)
                if owner > 0, owner != tid { holder = current[owner] }
            }
            charges[Charge(waiter: waiter, holder: holder), default: (0, 0)].ticks += 1
            if fresh.contains(tid) { charges[Charge(waiter: waiter, holder: holder), default: (0, 0)].captures += 1 }
        }
    }

    private mutating func slot(_ sample: ThreadSample) -> Int {
        if let known = slots[sample.key] { return known }
        samples.append(sample)
        slots[sample.key] = samples.count - 1
        return samples.count - 1
    }

    /// The waits for a mutex, by the holder's stack: a record a holder's place, its
    /// count the waiting ticks charged to it, `contentions` the waits seen afresh.
    func records(_ symbolizer: StackSymbolizer) -> [Record] {
        let stacks = samples.map(symbolizer.threadStack)
        var byHolder: [Int?: (ticks: Int, captures: Int)] = [:]
        for (charge, counted) in charges {
            let waiter = stacks[charge.waiter]
            guard ThreadWaits.waitName(waiter.locations, state: waiter.state) == "mutex" else { continue }
            byHolder[charge.holder, default: (0, 0)].ticks += counted.ticks
            byHolder[charge.holder, default: (0, 0)].captures += counted.captures
        }
        return byHolder.keys.sorted { ($0 ?? -1) < ($1 ?? -1) }.map { holder in
            let counted = byHolder[holder]!
            var record: Record
            if let holder {
                let stack = stacks[holder]
                record = Record(count: counted.ticks, locations: stack.locations, truncation: stack.truncation,
                                threadIDs: [stack.tid], state: stack.state, threadNames: stack.name.isEmpty ? [] : [stack.name])
            } else {
                record = Record(count: counted.ticks, locations: [MutexRecorder.unknownHolder], truncation: nil)
            }
            record.state = record.state ?? ThreadState(code: ThreadState.notRecorded, systemCall: nil, wchan: "")
            record.state?.wait = "mutex held"
            record.contentions = max(1, counted.captures)
            return record
        }
    }

    /// Where waits are charged whose holder could not be read or is not a thread of the process.
    static let unknownHolder = Location(address: 0, lines: [FrameLine(function: "(mutex holder unknown)", offset: 0, file: "", line: 0)])
}
