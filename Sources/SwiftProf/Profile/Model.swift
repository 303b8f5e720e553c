// The value model that flows from the symbolizer to the writers. Writers never
// see ptrace, libunwind or libdw: only these types.

/// One logical frame: a function at a source line. Several share one `Location`
/// when the compiler inlined calls.
public struct FrameLine: Hashable, Sendable {
    /// Demangled (unless asked not to); "" when no symbol covers the address.
    public var function: String
    /// From the entry of the physical function that holds the code.
    public var offset: UInt64
    /// "" when unknown.
    public var file: String
    /// 0 when unknown.
    public var line: Int

    public init(function: String, offset: UInt64, file: String, line: Int) {
        self.function = function
        self.offset = offset
        self.file = file
        self.line = line
    }
}

/// One physical frame: an address in the target and the logical frames at it.
public struct Location: Hashable, Sendable {
    /// The address of the call instruction (return address - 1), or the pc of the leaf.
    public var address: UInt64
    /// The load bias of the object holding `address` (0 when unknown), for `--addresses=relative`.
    public var moduleBias: UInt64
    /// Innermost first: the inlined callee, then its callers, the physical function last.
    public var lines: [FrameLine]

    public init(address: UInt64, moduleBias: UInt64 = 0, lines: [FrameLine]) {
        self.address = address
        self.moduleBias = moduleBias
        self.lines = lines
    }
}

/// One thread's stack as the user sees it, leaf first.
public struct ThreadStack: Hashable, Sendable {
    public var tid: Int32
    public var name: String
    public var locations: [Location]
    /// Why the stack stops before its outermost frame; nil when complete.
    public var truncation: String?

    public init(tid: Int32, name: String, locations: [Location], truncation: String?) {
        self.tid = tid
        self.name = name
        self.locations = locations
        self.truncation = truncation
    }
}

/// Identical stacks collapsed: what one `N @ ...` record holds.
public struct Record: Hashable, Sendable {
    public var count: Int
    public var locations: [Location]
    public var truncation: String?
    /// The tids that share this stack, ascending (empty when read back from text).
    public var threadIDs: [Int32]

    public init(count: Int, locations: [Location], truncation: String?, threadIDs: [Int32] = []) {
        self.count = count
        self.locations = locations
        self.truncation = truncation
        self.threadIDs = threadIDs
    }
}

/// A symbolized capture of one process.
public struct Snapshot: Sendable {
    public var pid: Int32
    public var threads: [ThreadStack]
    public var failures: [ThreadFailure]
    /// /proc/PID/maps as captured, for `--memory-map`.
    public var memoryMapLines: [String]
    /// The process was stopped by a signal before the capture, and still is.
    public var wasStopped: Bool

    public init(pid: Int32, threads: [ThreadStack], failures: [ThreadFailure] = [], memoryMapLines: [String] = [],
                wasStopped: Bool = false) {
        self.pid = pid
        self.threads = threads
        self.failures = failures
        self.memoryMapLines = memoryMapLines
        self.wasStopped = wasStopped
    }

    public var isComplete: Bool { failures.isEmpty }
}
