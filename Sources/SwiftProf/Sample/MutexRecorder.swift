// Go's mutex profile of a native program: the time threads wait for a lock,
// charged to the stack of the thread that held it at that moment (as Go charges
// the unlocker). At each tick, every thread blocked in futex(2) has the lock
// around the word it sleeps on read once more: a glibc mutex keeps its owner's
// thread id in `__owner` (offset 8), a read-write lock its writer in
// `__cur_writer` (offset 24; the word slept on is at 8 or 12, ThreadWaits), and
// that thread's place at the same tick is where the wait is charged. Which of the
// two the sleeper waited for is known once its stack is symbolized, at the end
// (its innermost primitive), so both are read. A file lock (flock, fcntl) is held
// by a process, which /proc/locks names; the kernel records no thread, so such a
// wait is charged to the holding process, said as such. A holder that nothing
// records (readers of a read-write lock, a Rust mutex) or that is not a thread of
// the process is charged as unknown, also said.

struct MutexRecorder {
    private var samples: [ThreadSample] = []
    private var slots: [ThreadSample.Key: Int] = [:]
    /// Each thread's place at the latest tick.
    private var current: [Int32: Int] = [:]
    /// Who held what a waiter slept on, for each lock it may have been.
    private struct Holders: Hashable {
        /// The place of the mutex's owner, were the word a mutex's.
        var mutex: Int?
        /// The place of the writer, were the word a read-write lock's.
        var rwlock: Int?
        /// The file lock waited for and the processes holding it.
        var file: FileLockWait?
    }
    private struct Charge: Hashable {
        var waiter: Int
        var holders: Holders
    }
    private var charges: [Charge: (ticks: Int, captures: Int)] = [:]
    private let memory: TargetMemory

    init(memory: TargetMemory) { self.memory = memory }

    mutating func add(_ tick: Sampler.Tick) {
        for sample in tick.places { current[sample.tid] = slot(sample) }
        let fresh = Set(tick.samples.map(\.tid))
        var files: [(tid: Int32, call: SystemCall)] = []
        var waiting: [(tid: Int32, holders: Holders)] = []
        for tid in tick.samples.map(\.tid) + tick.reused {
            guard let waiter = current[tid], let call = samples[waiter].state?.systemCall else { continue }
            if call.name == "futex", ThreadWaits.sleepsOnWord(call), let word = call.arguments.first.flatMap(parseHex) {
                waiting.append((tid, lockHolders(word: word, waiter: tid)))
            } else if ["flock", "fcntl"].contains(call.name) {
                files.append((tid, call))
            }
        }
        if !files.isEmpty, case .process(let pid) = memory {
            for wait in FileLocks.waits(pid: pid, calls: files) { waiting.append((wait.waiter, Holders(file: wait))) }
        }
        for (tid, holders) in waiting {
            guard let waiter = current[tid] else { continue }
            let charge = Charge(waiter: waiter, holders: holders)
            charges[charge, default: (0, 0)].ticks += 1
            if fresh.contains(tid) { charges[charge, default: (0, 0)].captures += 1 }
        }
    }

    /// The places of a mutex's owner and a read-write lock's writer, were `word` either's.
    private func lockHolders(word: UInt64, waiter: Int32) -> Holders {
        func place(_ bytes: [UInt8], at offset: Int) -> Int? {
            guard bytes.count >= offset + 4 else { return nil }
            var tid: Int32 = 0
            for index in (offset..<(offset + 4)).reversed() { tid = tid << 8 | Int32(bytes[index]) }
            guard tid > 0, tid != waiter else { return nil }
            return current[tid]
        }
        if word % 8 == 0 {
            // A mutex's first word (owner at +8), or a read-write lock's __wrphase_futex (writer at +16).
            if let bytes = Ptrace.readMemory(memory, at: word, count: 24), bytes.count == 24 {
                return Holders(mutex: place(bytes, at: 8), rwlock: place(bytes, at: 16))
            }
            return Holders(mutex: Ptrace.readMemory(memory, at: word, count: 12).flatMap { place($0, at: 8) })
        }
        // A read-write lock's __writers_futex (writer at +12); never a mutex's word.
        return Holders(rwlock: Ptrace.readMemory(memory, at: word, count: 16).flatMap { place($0, at: 12) })
    }

    private mutating func slot(_ sample: ThreadSample) -> Int {
        if let known = slots[sample.key] { return known }
        samples.append(sample)
        slots[sample.key] = samples.count - 1
        return samples.count - 1
    }

    /// Where a wait is charged: a thread's place, or a line that says who holds it.
    private enum Holder: Hashable, Comparable {
        case thread(Int)
        case described(String)
    }

    /// The waits for a lock, by the holder's stack: a record a holder's place and the
    /// lock's kind, its count the waiting ticks charged to it, `contentions` the waits
    /// seen afresh.
    func records(_ symbolizer: StackSymbolizer) -> [Record] {
        let stacks = samples.map(symbolizer.threadStack)
        struct Key: Hashable, Comparable {
            var kind: String
            var holder: Holder
            static func < (a: Key, b: Key) -> Bool { a.kind != b.kind ? a.kind < b.kind : a.holder < b.holder }
        }
        var byHolder: [Key: (ticks: Int, captures: Int)] = [:]
        for (charge, counted) in charges {
            let waiter = stacks[charge.waiter]
            guard let kind = ThreadWaits.waitName(waiter.locations, state: waiter.state) else { continue }
            let holder: Holder
            switch kind {
            case "mutex": holder = charge.holders.mutex.map(Holder.thread) ?? .described("(mutex holder unknown)")
            case "rwlock": holder = charge.holders.rwlock.map(Holder.thread) ?? .described("(rwlock holder unknown: readers are not recorded)")
            case "file lock":
                guard let file = charge.holders.file else { continue }
                let holders = Profiler.holders(file.holders, threadIDs: true)
                holder = .described("(\(file.kind.rawValue) on \(NameQuoting.quoted(file.path)) held by \(holders); no thread is recorded)")
            default: continue
            }
            let key = Key(kind: kind, holder: holder)
            byHolder[key, default: (0, 0)].ticks += counted.ticks
            byHolder[key, default: (0, 0)].captures += counted.captures
        }
        return byHolder.keys.sorted().map { key in
            let counted = byHolder[key]!
            var record: Record
            switch key.holder {
            case .thread(let holder):
                let stack = stacks[holder]
                record = Record(count: counted.ticks, locations: stack.locations, truncation: stack.truncation,
                                threadIDs: [stack.tid], state: stack.state, threadNames: stack.name.isEmpty ? [] : [stack.name])
            case .described(let line):
                record = Record(count: counted.ticks, locations: [Self.location(line)], truncation: nil)
            }
            record.state = record.state ?? ThreadState(code: ThreadState.notRecorded, systemCall: nil, wchan: "")
            record.state?.wait = "\(key.kind) held"
            record.contentions = max(1, counted.captures)
            return record
        }
    }

    /// A frame of its own that says who holds a lock when no thread's stack can.
    static func location(_ line: String) -> Location {
        Location(address: 0, lines: [FrameLine(function: line, offset: 0, file: "", line: 0)])
    }
}
