// What every writer takes and every reader gives back: a snapshot's groups,
// and its per-thread stacks when the source had them.

public struct ProfileDocument: Sendable, Equatable {
    /// The first word of the pprof-text header: "thread" for swiftprof, "goroutine" for Go.
    public var profileName: String
    public var pid: Int32?
    /// Grouped and sorted as the pprof-text writer prints them.
    public var records: [Record]
    /// One stack a thread; empty when the source only had groups (pprof-text, pprof).
    public var threads: [ThreadStack]
    public var memoryMapLines: [String]?
    public var failures: [ThreadFailure]
    /// Where each thread was tick by tick, of a sampled run (`--format trace`); nil otherwise.
    public var timeline: Timeline?
    /// Of a block profile: the time a tick stands for, and the run's.
    public var sampledTime: PprofProto.SampledTime?
    /// Lines about the capture itself (how threads were captured, samples, rate),
    /// written as "# " comments after the pprof-text header.
    public var comments: [String] = []
    /// The command that made it ("swiftprof attach 4242"), for titles; nil: a dump of `pid`.
    public var command: String?
    /// The thread shown first where threads are shown one by one (a core's thread that
    /// took the fatal signal, as a crash report begins with it); nil: by id.
    public var leadingThread: Int32?

    /// What the counts count: samples of a sampling run, else threads, goroutines or tasks.
    public var unit: CountUnit {
        if comments.contains(where: { $0.hasPrefix("samples: ") }) { return CountUnit("sample") }
        return CountUnit(["goroutine", "task"].contains(profileName) ? profileName : "thread")
    }

    public init(profileName: String = "thread", pid: Int32? = nil, records: [Record], threads: [ThreadStack] = [],
                memoryMapLines: [String]? = nil, failures: [ThreadFailure] = []) {
        self.profileName = profileName
        self.pid = pid
        self.records = records
        self.threads = threads
        self.memoryMapLines = memoryMapLines
        self.failures = failures
    }

    public init(snapshot: Snapshot, addresses: AddressMode = .absolute) {
        self.init(pid: snapshot.pid, records: Grouper.records(snapshot.threads, addresses: addresses),
                  threads: snapshot.threads, memoryMapLines: snapshot.memoryMapLines, failures: snapshot.failures)
    }

    public var total: Int { records.reduce(0) { $0 + $1.count } }

    /// How many threads `threadStacks` holds: an input file's counts go up to 2^40,
    /// so a writer that needs them one by one (traceback) asks first.
    public var threadStackCount: Int {
        threads.isEmpty ? records.reduce(0) { $0 &+ Self.threadCount($1) } : threads.count
    }

    /// The most threads a document is expanded into (ThreadStack a thread).
    public static let maximumThreadStacks = 1_000_000

    private static func threadCount(_ record: Record) -> Int {
        record.threadIDs.isEmpty ? record.count : record.threadIDs.count
    }

    /// The threads, or each record expanded into its threads when the source had
    /// groups only: one a listed thread id (a sampled record's count is samples, not
    /// threads), or `count` of them, id 0, when it lists none.
    public var threadStacks: [ThreadStack] {
        if !threads.isEmpty { return threads }
        return records.flatMap { record in
            (0..<Self.threadCount(record)).map { index in
                ThreadStack(tid: index < record.threadIDs.count ? record.threadIDs[index] : 0,
                            name: record.threadNames.count == 1 ? record.threadNames[0] : "",
                            locations: record.locations, truncation: record.truncation, state: record.state)
            }
        }
    }
}

extension Location {
    /// The name a frame shows where a single string is wanted: the function; without
    /// one, the object and the offset in it, as pprof-text, pprof and perf name such
    /// frames (`[/usr/sbin/nginx+0x54173]`: the same in every run, so profiles of two
    /// runs merge and diff); the address only where no object is known.
    static func displayName(_ line: FrameLine, of location: Location) -> String {
        guard line.function.isEmpty else { return line.function }
        return location.objectOffset() ?? hex(location.address)
    }

    /// `[module+0xoffset]` for a frame in a mapped object (not the kernel's), the module
    /// as `quoting` writes it where a format quotes names; nil otherwise.
    func objectOffset(quoting: (String) -> String = { $0 }) -> String? {
        module.isEmpty || isKernel ? nil : "[\(quoting(module))+\(hex(address &- moduleBias))]"
    }
}

/// The noun for a count: "1 thread", "200 samples".
public struct CountUnit: Sendable, Equatable {
    public let singular: String
    public var plural: String { singular + "s" }

    public init(_ singular: String) { self.singular = singular }

    public func counted(_ count: Int) -> String { "\(count) \(count == 1 ? singular : plural)" }
}
