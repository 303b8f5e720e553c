// Where each thread was over a sampled run, in time order (`--format trace`):
// each thread's ticks, consecutive ones at the same place merged into one slice.

public struct Timeline: Sendable, Equatable {
    /// One thread's slices, in time order, without gaps while it was seen.
    public struct Track: Sendable, Equatable {
        public var tid: Int32
        public var name: String
        public var process: ProcessIdentity?
        public var slices: [Slice]
    }

    /// From `start` to `end` (nanoseconds since the run's start) the thread was where
    /// `stacks[stack]` says.
    public struct Slice: Sendable, Equatable {
        public var start: UInt64
        public var end: UInt64
        public var stack: Int
        /// Runnable but off a CPU: waiting for one.
        public var waitingForCPU = false
    }

    /// Each place a thread was seen at: its frames and state.
    public var stacks: [ThreadStack]
    public var tracks: [Track]
    /// The run's start, as a Unix time in nanoseconds.
    public var startUnixNanoseconds: Int64

    /// Another process's tracks after these (its stacks numbered after these).
    mutating func append(_ other: Timeline) {
        let offset = stacks.count
        stacks += other.stacks
        tracks += other.tracks.map { track in
            var track = track
            track.slices = track.slices.map { slice in
                var slice = slice
                slice.stack += offset
                return slice
            }
            return track
        }
    }

    public init(stacks: [ThreadStack], tracks: [Track], startUnixNanoseconds: Int64) {
        self.stacks = stacks
        self.tracks = tracks
        self.startUnixNanoseconds = startUnixNanoseconds
    }
}
