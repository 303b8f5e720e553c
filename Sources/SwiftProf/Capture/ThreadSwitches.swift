// Which threads have run since they were last captured, and where the others
// left the CPU, from the kernel's own record of every context switch.
//
// Each thread has a perf event on each CPU (a software event sampled at every
// switch out, with context-switch, task and comm records), and all events of a
// CPU write into that CPU's one ring, as perf record -p does: for each switch,
// the user registers the thread left the CPU with and the moment it came back.
// A tick reads one ring a CPU, so it costs nothing for a thread that has not run
// since its last capture, however many such threads there are (a ring a thread
// meant a thousand rings polled a tick at 1,000 threads, a quarter of the
// sampler's CPU; /proc before that, two reads a thread a tick). And a thread off
// the CPU is exactly where its last switch out left it: one woken but still
// waiting for a CPU, or preempted, has not executed an instruction since. Those
// are the moments the state in /proc cannot place: it says "running" for them,
// and counting them as running credited a thread's wake-up latency to the code
// it runs once on the CPU (0.31 instead of 0.23 for 0.23 ms bursts every 1 ms).
import CSwiftProf
import Glibc

final class ThreadSwitches {
    /// What the kernel recorded of one thread, up to a drain. Read for every thread
    /// at every tick: it points at the thread's record instead of copying it, and is
    /// to be used before the next drain.
    struct Status {
        fileprivate let state: UnsafePointer<sp_switch_state>

        /// nil until a switch is recorded.
        var onCPU: Bool? { state.pointee.on_cpu < 0 ? nil : state.pointee.on_cpu == 1 }
        /// Switched out while runnable (preempted), not to wait for something.
        var wasPreempted: Bool { state.pointee.preempted != 0 }
        /// The thread has ended (a zombie leader stays listed in /proc).
        var exited: Bool { state.pointee.exited != 0 }
        var epoch: Epoch { Epoch(switchIns: state.pointee.switch_ins, lost: state.pointee.lost) }

        /// The user registers of the last switch out, if there was one with user registers.
        var lastOut: RegisterSet? {
            guard state.pointee.has_registers != 0 else { return nil }
            return RegisterSet(values: withUnsafeBytes(of: state.pointee.registers) { Array($0.bindMemory(to: UInt64.self)) })
        }
    }

    /// Switches in and records lost so far: the same epoch at two drains means the
    /// thread was not switched onto a CPU in between (nothing was dropped that
    /// could have said so).
    struct Epoch: Equatable {
        var switchIns: UInt64
        var lost: UInt64
    }

    /// A thread's events (one a CPU) and its two states, kept at fixed addresses for C.
    private final class Thread {
        let descriptors: [Int32]
        let state = UnsafeMutablePointer<sp_switch_state>.allocate(capacity: 1)
        /// The state as of the last drain's cutoff (the tick).
        let atTick = UnsafeMutablePointer<sp_switch_state>.allocate(capacity: 1)

        init(descriptors: [Int32]) {
            self.descriptors = descriptors
            state.initialize(to: sp_switch_state())
            state.pointee.on_cpu = -1
            atTick.initialize(to: state.pointee)
        }

        deinit {
            for descriptor in descriptors { close(descriptor) }
            state.deallocate()
            atTick.deallocate()
        }

        func apply(_ record: inout sp_switch_record) { sp_switch_apply(&record, state) }
        func catchUp() { atTick.pointee = state.pointee }
    }

    let pid: Int32
    /// The rings of every CPU, this process's own or shared with the other processes of a run.
    private let rings: SwitchRings
    private let ownsRings: Bool
    /// nil: no event could be opened for that thread.
    private var threads: [Int32: Thread?] = [:]
    /// How many of `threads` are nil.
    private var untracked = 0
    /// Threads started (FORK records) and ended (EXIT) since the caller last listed them.
    private var started: [Int32] = []
    private var ended: Set<Int32> = []
    /// Processes the process started (FORK records of a new pid), since last taken.
    private var childProcesses: [Int32] = []
    /// Threads with records applied after the last cutoff: their state at the next
    /// tick is the one of now (unless more records come).
    private var behind: Set<Int32> = []
    /// Threads renamed since their name was last read (COMM records; after a loss,
    /// every thread, as a rename may be among what was dropped).
    private var renamed: Set<Int32> = []
    /// Renames recorded so far (and losses that may have hidden one).
    private(set) var renames = 0
    private var records: [sp_switch_record] = []
    /// An event was opened since the caller last listed the threads (and cleared this).
    var openedSinceListing = false

    /// `rings`: shared with the other processes of a run (their losses are counted
    /// there, once); nil: rings of its own.
    init(pid: Int32, rings shared: SwitchRings? = nil) {
        self.pid = pid
        rings = shared ?? SwitchRings()
        ownsRings = shared == nil
        rings.register(pid)
    }

    deinit { rings.unregister(pid) }

    /// Why perf_event_open is refused for this process, once it was.
    private(set) var refusal: Int32?
    /// Records the kernel dropped (a ring filled between two ticks); of shared rings, 0.
    var lost: UInt64 { ownsRings ? rings.lost : 0 }

    /// Whether the kernel records `tid`'s switches, opening its events the first time.
    /// What happened before the events were opened is not recorded: the caller learns
    /// the thread's state once by other means (ThreadActivity) after this call.
    func track(_ tid: Int32) -> Bool {
        guard refusal == nil else { return false }
        if let known = threads[tid] { return known != nil }
        if rings.rings.isEmpty {
            rings.open()
            if let refused = rings.refusal { refusal = refused }
        }
        guard refusal == nil else { return false }
        // One event a CPU, as perf record -p opens them: an event may only write into
        // another's ring on the same CPU, and one ring a CPU is what makes a tick read
        // two rings instead of a thousand.
        var descriptors: [Int32] = []
        for ring in rings.rings {
            let descriptor = sp_switch_open(tid, ring.cpu, ring.event.descriptor)
            guard descriptor >= 0 else {
                for opened in descriptors { close(opened) }
                if PerfEvent.isRefusal(-descriptor) { refusal = -descriptor }
                threads[tid] = .some(nil)
                untracked += 1
                return false
            }
            descriptors.append(descriptor)
        }
        threads[tid] = Thread(descriptors: descriptors)
        openedSinceListing = true
        return true
    }

    /// Reads every ring, keeping each thread's state as of `tick` (CLOCK_MONOTONIC);
    /// the threads whose state at the tick may have changed since the last call (the
    /// others recorded nothing at all: usually all but the busy ones).
    func drainAll(tick: UInt64) -> Set<Int32> {
        var changed = behind
        for tid in behind { threadNamed(tid)?.catchUp() }
        behind = []
        var cut: Set<Int32> = []
        readRings { tid, thread, record in
            if record.time > tick, cut.insert(tid).inserted { thread.catchUp() }
            changed.insert(tid)
            thread.apply(&record)
        } lostAll: {
            changed.formUnion(threads.keys)
        }
        for tid in changed where !cut.contains(tid) { threadNamed(tid)?.catchUp() }
        behind = cut
        return changed
    }

    /// Reads the rings up to now, leaving the states at the tick as they were.
    private func drainNow() {
        readRings { tid, thread, record in
            thread.apply(&record)
            behind.insert(tid)
        } lostAll: {
            behind.formUnion(threads.keys)
        }
    }

    /// Every record of every ring, in time order: a thread's records are in the rings
    /// of the CPUs it ran on. Records of threads started and ended are kept for
    /// `threads(following:)`; a loss is counted in every thread (nothing says whose
    /// records were dropped) and then `lostAll` is called.
    private func readRings(_ each: (Int32, Thread, inout sp_switch_record) -> Void, lostAll: () -> Void) {
        rings.take(for: pid, into: &records)
        for index in records.indices {
            var record = records[index]
            switch Int(record.kind) {
            case SP_SWITCH_FORK:
                // A new thread of the process (a child process has a pid of its own).
                if record.pid == pid && record.ppid == pid { started.append(record.tid) }
                else if record.ppid == pid && record.pid == record.tid { childProcesses.append(record.pid) }
            case SP_SWITCH_COMM:
                renamed.insert(record.tid)
                renames += 1
            case SP_SWITCH_LOST:
                renamed.formUnion(threads.keys)
                renames += 1
                for case let thread? in threads.values {
                    thread.apply(&record)
                    thread.catchUp()
                }
                lostAll()
            default:
                if record.kind == SP_SWITCH_EXIT && record.pid == pid { ended.insert(record.tid) }
                if let thread = threadNamed(record.tid) { each(record.tid, thread, &record) }
            }
        }
    }

    private func threadNamed(_ tid: Int32) -> Thread? {
        guard case let thread?? = threads[tid] else { return nil }
        return thread
    }

    /// The threads `known` and those they started since the last call, without
    /// those that ended, in order; nil when the records cannot say (a thread not
    /// tracked, whose new threads would go unseen).
    func threads(following known: [Int32]) -> [Int32]? {
        // The known threads are the tracked ones (the sampler tracks every thread it
        // lists, and drops the others).
        guard untracked == 0, threads.count == known.count else { return nil }
        guard !started.isEmpty || !ended.isEmpty else { return known }
        let now = Set(known + started).subtracting(ended).sorted()
        started = []
        ended = []
        return now
    }

    /// The processes started since the last call (a many-process run follows them).
    func takeChildProcesses() -> [Int32] {
        defer { childProcesses = [] }
        return childProcesses
    }

    /// Forgets threads started and ended so far (a listing of /proc has just found them).
    func forgetStarted() {
        started = []
        ended = []
    }

    /// Whether a name read of `tid` before may be stale (and forgets a rename: the
    /// caller reads the name now). A thread is renamed by prctl or through its comm
    /// file by a thread of its process, and by exec, each of which leaves a record;
    /// an untracked thread's name is always read again, and so is every name after
    /// a loss. A rename by another process through /proc is not recorded (rare:
    /// such a name is read at the thread's next capture without its events).
    func mayBeRenamed(_ tid: Int32) -> Bool {
        guard threadNamed(tid) != nil else { return true }
        return renamed.remove(tid) != nil
    }

    /// Reads the rings and says where one thread is now; nil when not tracked.
    func drain(_ tid: Int32) -> Status? {
        guard threadNamed(tid) != nil else { return nil }
        drainNow()
        return threadNamed(tid).map { Status(state: $0.state) }
    }

    /// Where the thread was at the last drain's tick, and where it was at the drain
    /// (later, and maybe switched in since); nil when not tracked.
    func status(_ tid: Int32) -> (atTick: Status, atDrain: Status)? {
        guard let thread = threadNamed(tid) else { return nil }
        return (Status(state: thread.atTick), Status(state: thread.state))
    }

    /// Closes the events of threads that are gone.
    func keep(only tids: Set<Int32>) {
        for tid in threads.keys where !tids.contains(tid) {
            if case .some(nil) = threads[tid] { untracked -= 1 }
            threads[tid] = nil
            behind.remove(tid)
            renamed.remove(tid)
        }
    }
}
