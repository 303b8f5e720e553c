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
    /// 0 for a kernel frame whose address the kernel hides.
    public var address: UInt64
    /// The load bias of the object holding `address` (0 when unknown), for `--addresses=relative`.
    public var moduleBias: UInt64
    /// The object's path, `[vdso]`, `[kernel]`, or "" when unknown.
    public var module: String
    /// Innermost first: the inlined callee, then its callers, the physical function last.
    public var lines: [FrameLine]
    /// A Swift async caller, found in a task's async context rather than on a thread's
    /// stack (Swift's backtracer marks these `[async]`).
    public var isAsyncCaller = false

    public static let kernelModule = "[kernel]"

    public init(address: UInt64, moduleBias: UInt64 = 0, module: String = "", lines: [FrameLine]) {
        self.address = address
        self.moduleBias = moduleBias
        self.module = module
        self.lines = lines
    }

    public var isKernel: Bool { module == Location.kernelModule }

    /// The same frame, marked as found in an async context.
    public var asAsyncCaller: Location {
        var location = self
        location.isAsyncCaller = true
        return location
    }
}

/// A system call a thread is blocked in.
public struct SystemCall: Hashable, Sendable, CustomStringConvertible {
    public var name: String
    /// Formatted as the writers print them; "…" where unknown or where the threads of a record differ.
    public var arguments: [String]

    public init(name: String, arguments: [String]) {
        self.name = name
        self.arguments = arguments
    }

    public var description: String { "\(name)(\(arguments.joined(separator: ", ")))" }
}

/// What the kernel says a thread is doing, read from /proc.
public struct ThreadState: Hashable, Sendable {
    /// R S D T t Z I ... as in /proc/PID/stat.
    public var code: Character
    public var systemCall: SystemCall?
    /// The kernel function the thread sleeps in; "" when unknown.
    public var wchan: String
    /// How long since it last ran, where the kernel tells; never printed unless asked.
    public var blockedNanoseconds: UInt64?
    /// The ids of the Swift async tasks the thread (or, merged, the threads) runs, ascending.
    public var swiftTasks: [UInt64] = []
    /// What the blocked thread waits for, and who holds it, where that is known
    /// ("mutex audit_lock held by auditor (26225)"): one line, names quoted; "…"
    /// for threads of one record that wait for different things.
    public var wait: String?

    public init(code: Character, systemCall: SystemCall? = nil, wchan: String = "", blockedNanoseconds: UInt64? = nil) {
        self.code = code
        self.systemCall = systemCall
        self.wchan = wchan
        self.blockedNanoseconds = blockedNanoseconds
    }

    /// A core's threads: their state letter is not in it.
    public static let notRecorded: Character = "?"

    /// The words ps and /proc/PID/status use for the state letter.
    public var codeName: String {
        switch code {
        case "R": return "running"
        case "S": return "sleeping"
        case "D": return "disk sleep"
        case "T": return "stopped"
        case "t": return "tracing stop"
        case "Z": return "zombie"
        case "X": return "dead"
        case "I": return "idle"
        case "P": return "parked"
        case ThreadState.notRecorded: return "not recorded"
        default: return "unknown"
        }
    }

    /// What records are grouped by, besides the stack: not the arguments nor the time.
    /// Nor the wait: threads of one stack that each wait on their own object (a pool
    /// whose workers have a condition variable each) are still one record.
    var groupKey: String { "\(code) \(systemCall?.name ?? "") \(wchan)" }
}

/// One thread's stack as the user sees it, leaf first.
public struct ThreadStack: Hashable, Sendable {
    public var tid: Int32
    public var name: String
    /// Leaf first; kernel frames, when there are any, come before the user frames.
    public var locations: [Location]
    /// Why the stack stops before its outermost frame; nil when complete.
    public var truncation: String?
    public var state: ThreadState?
    /// A goroutine's words after its state in Go's debug=2 header (", 5 minutes",
    /// ", locked to thread"): for the traceback alone, they change as time passes.
    public var headerDetail = ""
    /// A goroutine's profiler labels (runtime/pprof.Do, SetGoroutineLabels).
    public var labels: [String: String] = [:]
    /// Its runtime prints the labels in its traceback header (Go 1.26 on, GODEBUG
    /// tracebacklabels=1): `goroutine 20 [chan receive] {job: import}:`.
    public var headerShowsLabels = false
    /// The process it is a thread of, where a capture spans several.
    public var process: ProcessIdentity?

    public init(tid: Int32, name: String, locations: [Location], truncation: String?, state: ThreadState? = nil) {
        self.tid = tid
        self.name = name
        self.locations = locations
        self.truncation = truncation
        self.state = state
    }
}

/// Identical stacks collapsed: what one `N @ ...` record holds.
public struct Record: Hashable, Sendable {
    public var count: Int
    public var locations: [Location]
    public var truncation: String?
    /// The tids that share this stack, ascending (empty when unknown).
    public var threadIDs: [Int32]
    /// The state the threads share: the same letter, system call and wchan.
    public var state: ThreadState?
    /// The distinct names (comm) of those threads, sorted.
    public var threadNames: [String]
    /// The goroutines' profiler labels: goroutines are grouped by stack and labels, as Go groups them.
    public var labels: [String: String] = [:]
    /// The processes of its threads, by pid, where a capture spans several: one, or
    /// more when identical stacks of different processes are merged.
    public var processes: [ProcessIdentity] = []
    /// Of a block profile: the waits its count of ticks is made of (each a wait seen
    /// at a tick: a thread captured blocked, not one still in the wait it was in at
    /// the tick before); nil in every other profile.
    public var contentions: Int?

    /// The largest count a reader accepts: sums of counts must not overflow.
    public static let maximumCount = 1 << 40

    public init(count: Int, locations: [Location], truncation: String?, threadIDs: [Int32] = [], state: ThreadState? = nil,
                threadNames: [String] = []) {
        self.count = count
        self.locations = locations
        self.truncation = truncation
        self.threadIDs = threadIDs
        self.state = state
        self.threadNames = threadNames
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
