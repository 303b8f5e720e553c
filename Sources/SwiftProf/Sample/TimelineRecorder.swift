// Keeps, tick by tick, where each thread was: only the ticks where that changed,
// so a thread blocked for the whole run costs one entry. A thread on a CPU is
// where the kernel's last sample of it in the tick put it (where it was last
// seen, when the kernel took none); a runnable one off a CPU waits for one.

struct TimelineRecorder {
    private var samples: [ThreadSample] = []
    private var slots: [ThreadSample.Key: Int] = [:]
    private struct Track {
        var name: String
        var changes: [(time: UInt64, sample: Int, waitingForCPU: Bool)]
        var lastSeen: UInt64
    }
    private var tracks: [Int32: Track] = [:]
    private let period: UInt64

    init(period: UInt64) { self.period = period }

    mutating func add(_ tick: Sampler.Tick, at time: UInt64) {
        let placed = tick.places
        for sample in placed { place(sample, at: time) }
        let seen = Set(placed.map(\.tid))
        for tid in tick.reused where !seen.contains(tid) { tracks[tid]?.lastSeen = time }
        for (tid, _) in tick.running where !seen.contains(tid) {
            // On a CPU, with no kernel sample of it this tick: where it was last seen,
            // but running, not waiting for a CPU any more.
            guard var track = tracks[tid] else { continue }
            if let last = track.changes.last, last.waitingForCPU { track.changes.append((time, last.sample, false)) }
            track.lastSeen = time
            tracks[tid] = track
        }
    }

    /// Threads where they were before the first tick added (`watch`'s window).
    mutating func seed(_ samples: [ThreadSample], at time: UInt64) {
        for sample in samples { place(sample, at: time) }
    }

    private mutating func place(_ sample: ThreadSample, at time: UInt64) {
        let slot: Int
        if let known = slots[sample.key] {
            slot = known
        } else {
            slot = samples.count
            samples.append(sample)
            slots[sample.key] = slot
        }
        if var track = tracks[sample.tid] {
            let last = track.changes.last
            if last?.sample != slot || last?.waitingForCPU != sample.waitingForCPU {
                track.changes.append((time, slot, sample.waitingForCPU))
            }
            track.lastSeen = time
            track.name = sample.name
            tracks[sample.tid] = track
        } else {
            tracks[sample.tid] = Track(name: sample.name, changes: [(time, slot, sample.waitingForCPU)], lastSeen: time)
        }
    }

    /// The tracks symbolized, in tid order. Each place holds from its tick to the tick
    /// of the next; the last, for a period after the thread was last seen.
    /// `start`: the run's start (CLOCK_MONOTONIC), which slice times count from.
    func timeline(_ symbolizer: StackSymbolizer, start: UInt64, process: ProcessIdentity? = nil, startUnixNanoseconds: Int64) -> Timeline {
        let stacks = samples.map(symbolizer.threadStack)
        let symbolized = tracks.keys.sorted().map { tid -> Timeline.Track in
            let track = tracks[tid]!
            let ends = track.changes.dropFirst().map(\.time) + [track.lastSeen + period]
            let slices = zip(track.changes, ends).map { change, end in
                Timeline.Slice(start: change.time - min(change.time, start), end: end - min(end, start), stack: change.sample,
                               waitingForCPU: change.waitingForCPU)
            }
            return Timeline.Track(tid: tid, name: track.name, process: process, slices: slices)
        }
        return Timeline(stacks: stacks, tracks: symbolized, startUnixNanoseconds: startUnixNanoseconds)
    }
}
