// Walks of the same stack, remembered. A thread computing in a loop is sampled
// at the same few pcs with the same sp a hundred times a second, and each walk
// costs a libunwind run (CFI parsed, tables searched). A walk is a function of what
// it read: the registers it asked for, the words of the stack copy, and the
// target's files (fixed while its maps are; the unwinder, and this memo with it,
// is replaced when they change). So a walk that read the same registers and the
// same stack words as a remembered one has the remembered result, exactly; the
// memo checks those reads, not a guess such as "same pc and sp".

/// Where a walk started: the pc and sp it was keyed by, and its depth limit.
struct WalkKey: Hashable {
    let pc: UInt64
    let sp: UInt64
    let limit: Int
}

/// Everything a walk read that can differ from one sample to the next.
struct WalkReads {
    /// DWARF register number and its value, as handed to libunwind.
    var registers: [(number: Int, value: UInt64?)] = []
    /// An address and the stack copy's word there (nil: outside the copy, and not
    /// served by the target's files either).
    var stackWords: [(address: UInt64, value: UInt64?)] = []
    /// Words of the target's writable file mappings (relocated data), read live.
    var liveWords: [(address: UInt64, value: UInt64)] = []
    /// False when the walk read something this record does not hold (a frame-pointer
    /// chain, Go's tables, code bytes read from the target): it is not replayed.
    var isReplayable = true

    /// Whether a walk from `registers` over `stack` would read the same values.
    func match(registers current: RegisterSet, stack: StackCopy, liveWord: (UInt64) -> UInt64?) -> Bool {
        registers.allSatisfy { current[dwarf: $0.number] == $0.value }
            && stackWords.allSatisfy { stack.word(at: $0.address) == $0.value }
            && liveWords.allSatisfy { liveWord($0.address) == $0.value }
    }
}

/// The last walks from each starting point, with what they read.
struct WalkMemo {
    private struct Entry {
        let reads: WalkReads
        let result: UnwoundStack
    }
    /// Newest first: one place (pc, sp) is reached from several callers (a helper
    /// called from three lines of a loop is three walks from the same pc and sp).
    private var entries: [WalkKey: [Entry]] = [:]
    private var count = 0
    static let walksPerPlace = 8
    /// Enough for every loop of a busy process; past it the memo starts over rather
    /// than grow with a target whose stacks never repeat.
    let capacity: Int
    private(set) var hits = 0

    init(capacity: Int = 4096) { self.capacity = capacity }

    mutating func result(for key: WalkKey, registers: RegisterSet, stack: StackCopy,
                         liveWord: (UInt64) -> UInt64?) -> UnwoundStack? {
        guard let entry = entries[key]?.first(where: { $0.reads.match(registers: registers, stack: stack, liveWord: liveWord) }) else {
            return nil
        }
        hits += 1
        return entry.result
    }

    mutating func remember(_ result: UnwoundStack, for key: WalkKey, reads: WalkReads) {
        guard reads.isReplayable else { return }
        if count >= capacity {
            entries.removeAll(keepingCapacity: true)
            count = 0
        }
        var walks = entries[key, default: []]
        if walks.count == WalkMemo.walksPerPlace { walks.removeLast() } else { count += 1 }
        walks.insert(Entry(reads: reads, result: result), at: 0)
        entries[key] = walks
    }
}
