// What a thread blocked in futex(2) waits for: a glibc or Rust std primitive (the
// innermost one in its stack), the object (by symbol, mapping or thread stack),
// and who holds it where the primitive records it; and the cycles of such waits:
// deadlocks, said at the top of a snapshot.
//
// A thread blocked in glibc's pthread_mutex_lock sleeps in futex(2) on the
// mutex's first word: the call's first argument, as /proc gives it. glibc keeps
// the owner's thread id in the mutex itself (x86_64: `__owner`, the int at offset
// 8, for every mutex type), so both are read without stopping anything. The
// owner is believed only if two reads of the mutex, around a look at the owner's
// own state, agree: a mutex released meanwhile is not said to be held.
//
// A read-write lock (glibc 2.25 on) is waited for on one of two futex words:
// readers and writers waiting for a phase change on `__wrphase_futex` (offset 8),
// writers waiting for another writer on `__writers_futex` (offset 12); the lock is
// 8-aligned, so the word's alignment says which. The writer holding it is
// `__cur_writer` (offset 24), zero while readers hold it: readers are not
// recorded anywhere, and a wait for them is not named.
//
// Any other futex a thread sleeps on is a word of the program's own (or of its
// runtime's: Go's notes, parking_lot): only the word is named.

/// One thread waiting: for a mutex or read-write lock another holds, for another
/// to end (pthread_join), on a condition variable or semaphore (which record no
/// owner: anyone may signal them), or on a futex word of its own.
public struct ThreadWait: Equatable, Sendable {
    public enum Kind: Equatable, Sendable {
        case mutex
        case join
        /// A read-write lock; its owner is the writer holding it.
        case rwlock
        case condition
        case semaphore
        /// A futex word of the program's (or its runtime's) own: no primitive that
        /// swiftprof knows, so only the word is named.
        case futex
    }
    public var waiter: Int32
    /// The mutex, read-write lock, condition variable or semaphore; for a join, the
    /// joined thread's id word.
    public var object: UInt64
    /// The lock's holder (its writer), a thread of the process; for a join, the
    /// thread joined. nil where nothing says (or two reads did not agree).
    public var owner: Int32?
    public var kind: Kind = .mutex
    /// For a read-write lock: whether the waiter wants it for writing (else for reading).
    public var forWriting = false
}

public enum ThreadWaits {
    /// glibc's functions that block on a mutex's futex (lll_lock_wait for the
    /// plain kinds, the _full path for robust and PI ones, the timed variants).
    static let lockFunctions: Set<String> = [
        "__lll_lock_wait", "__lll_lock_wait_private", "___pthread_mutex_lock", "__pthread_mutex_lock",
        "pthread_mutex_lock", "__pthread_mutex_lock_full", "__pthread_mutex_clocklock_common",
        "___pthread_mutex_timedlock", "__pthread_mutex_timedlock", "pthread_mutex_timedlock",
    ]

    /// glibc's pthread_join, which sleeps in futex on the joined thread's id word,
    /// expecting the id itself (the call's third argument) until the thread ends.
    static let joinFunctions: Set<String> = ["__pthread_clockjoin_ex", "___pthread_join", "__pthread_join", "pthread_join"]

    /// glibc's functions that block on a read-write lock, to read or to write.
    static let rwlockFunctions: Set<String> = [
        "__pthread_rwlock_rdlock_full64", "__pthread_rwlock_rdlock_full", "___pthread_rwlock_rdlock",
        "__pthread_rwlock_rdlock", "pthread_rwlock_rdlock", "__pthread_rwlock_wrlock_full64",
        "__pthread_rwlock_wrlock_full", "___pthread_rwlock_wrlock", "__pthread_rwlock_wrlock", "pthread_rwlock_wrlock",
        "___pthread_rwlock_timedrdlock64", "__pthread_rwlock_timedrdlock64", "pthread_rwlock_timedrdlock",
        "___pthread_rwlock_timedwrlock64", "__pthread_rwlock_timedwrlock64", "pthread_rwlock_timedwrlock",
        "___pthread_rwlock_clockrdlock64", "__pthread_rwlock_clockrdlock64", "pthread_rwlock_clockrdlock",
        "___pthread_rwlock_clockwrlock64", "__pthread_rwlock_clockwrlock64", "pthread_rwlock_clockwrlock",
    ]

    /// glibc's condition variable waits: futex on `__g_signals[g]`, at offset 40 or
    /// 44 of the (8-aligned) pthread_cond_t in the layout glibc 2.25 introduced
    /// (checked on Debian's 2.36; a glibc that moved the word would need its own
    /// offsets here, or the name would be of the bytes before or after).
    static let conditionFunctions: Set<String> = [
        "__pthread_cond_wait_common", "___pthread_cond_wait", "__pthread_cond_wait", "pthread_cond_wait",
        "___pthread_cond_timedwait64", "__pthread_cond_timedwait64", "___pthread_cond_timedwait", "pthread_cond_timedwait",
        "___pthread_cond_clockwait64", "__pthread_cond_clockwait64", "pthread_cond_clockwait",
    ]

    /// glibc's semaphore waits: futex on the semaphore's value, its first word.
    static let semaphoreFunctions: Set<String> = [
        "do_futex_wait", "__new_sem_wait_slow64", "__new_sem_wait_slow", "__new_sem_wait", "___sem_wait", "sem_wait",
        "__sem_timedwait64", "___sem_timedwait64", "sem_timedwait", "__sem_clockwait64", "___sem_clockwait64", "sem_clockwait",
    ]

    /// Rust's std locks on Linux (std::sys::sync::*::futex), which wait on futex words
    /// of their own and record no owner: the function that waits, the kind, and the
    /// futex word's offset in the lock (a RwLock's writers wait on its second word).
    /// Demangled names are `<std::sys::sync::mutex::futex::Mutex>::lock_contended`
    /// (v0) or `std::sys::sync::mutex::futex::Mutex::lock_contended` (legacy).
    static let rustLocks: [(function: String, kind: ThreadWait.Kind, offset: UInt64)] = [
        ("futex::Mutex::lock_contended", .mutex, 0), ("futex::RwLock::read_contended", .rwlock, 0),
        ("futex::RwLock::write_contended", .rwlock, 4), ("futex::Condvar::wait_optional_timeout", .condition, 0),
    ]

    static func rustLock(_ function: String) -> (kind: ThreadWait.Kind, offset: UInt64)? {
        guard function.contains("::futex::") else { return nil }
        let plain = String(function.filter { $0 != ">" })
        return rustLocks.first { plain.hasSuffix($0.function) }.map { ($0.kind, $0.offset) }
    }

    /// futex(2) operations that sleep on the word (FUTEX_WAIT, FUTEX_WAIT_BITSET,
    /// either private or not): the others wake, requeue or take a PI lock.
    static func sleepsOnWord(_ call: SystemCall) -> Bool {
        guard call.arguments.count > 1, let op = Int(call.arguments[1]) else { return false }
        return [0, 9].contains(op & 0x7f)
    }

    /// The threads of `snapshot` blocked in futex in one of glibc's primitives (or
    /// Rust's), in thread order: the primitive of the innermost frame that is one (a
    /// thread that wakes from a condition variable and waits for its mutex waits for
    /// the mutex).
    public static func find(in snapshot: Snapshot) -> [ThreadWait] {
        let tids = Set(snapshot.threads.map(\.tid))
        return snapshot.threads.compactMap { thread -> ThreadWait? in
            guard let call = thread.state?.systemCall, call.name == "futex", let first = call.arguments.first,
                  let address = parseHex(first) else { return nil }
            let functions = thread.locations.lazy.flatMap { $0.lines.reversed().map(\.function) }
            let known = functions.first(where: { name in
                [joinFunctions, rwlockFunctions, lockFunctions, conditionFunctions, semaphoreFunctions].contains { $0.contains(name) }
                    || rustLock(name) != nil
            })
            guard let innermost = known else {
                // A word of the program's own (or its runtime's): named, without an owner.
                return sleepsOnWord(call) ? ThreadWait(waiter: thread.tid, object: address, owner: nil, kind: .futex) : nil
            }
            let wait = { (kind: ThreadWait.Kind, object: UInt64, owner: Int32?) in
                ThreadWait(waiter: thread.tid, object: object, owner: owner.flatMap { $0 != thread.tid && tids.contains($0) ? $0 : nil },
                           kind: kind)
            }
            if let (kind, offset) = rustLock(innermost) {
                var rust = wait(kind, address &- offset, nil)
                rust.forWriting = innermost.hasSuffix("write_contended")
                return rust
            }
            if joinFunctions.contains(innermost) {
                guard call.arguments.count > 2, let joined = Int32(call.arguments[2]) else { return nil }
                return wait(.join, address, joined)
            }
            if rwlockFunctions.contains(innermost) {
                let lock = address % 8 == 0 ? address &- 8 : address &- 12
                var rwlock = wait(.rwlock, lock, writer(pid: snapshot.pid, lock: lock))
                rwlock.forWriting = innermost.contains("wrlock")
                return rwlock
            }
            if lockFunctions.contains(innermost) { return wait(.mutex, address, owner(pid: snapshot.pid, mutex: address)) }
            if conditionFunctions.contains(innermost) {
                return wait(.condition, address % 8 == 0 ? address &- 40 : address &- 44, nil)
            }
            return wait(.semaphore, address, nil)
        }.filter { $0.kind != .join || $0.owner != nil }
    }

    /// What a thread blocked as `state` says, with `locations`, waits on, for a block
    /// profile's `wait` label: a glibc or Rust primitive, a futex word of the program's
    /// own, a file lock (flock, fcntl F_SETLKW/F_OFD_SETLKW); nil for anything else
    /// (reading, polling, sleeping: not a wait for another thread).
    public static func waitName(_ locations: [Location], state: ThreadState?) -> String? {
        guard let call = state?.systemCall else { return nil }
        switch call.name {
        case "flock": return "file lock"
        case "fcntl":
            guard call.arguments.count > 1, let command = Int(call.arguments[1]), [7, 38].contains(command) else { return nil }
            return "file lock"
        case "futex":
            guard sleepsOnWord(call) else { return nil }
            let functions = locations.lazy.flatMap { $0.lines.reversed().map(\.function) }
            for name in functions {
                if lockFunctions.contains(name) { return "mutex" }
                if rwlockFunctions.contains(name) { return "rwlock" }
                if conditionFunctions.contains(name) { return "condition variable" }
                if semaphoreFunctions.contains(name) { return "semaphore" }
                if joinFunctions.contains(name) { return "join" }
                if let (kind, _) = rustLock(name) {
                    switch kind {
                    case .mutex: return "mutex"
                    case .rwlock: return "rwlock"
                    default: return "condition variable"
                    }
                }
            }
            return "futex"
        default: return nil
        }
    }

    /// A mutex's `__owner` (the low half of the word at 8, `__nusers` the high half).
    private static func owner(pid: Int32, mutex: UInt64) -> Int32? { threadID(pid: pid, in: mutex, at: 8) }

    /// A read-write lock's writer, `__cur_writer` (the low half of the word at 24).
    private static func writer(pid: Int32, lock: UInt64) -> Int32? { threadID(pid: pid, in: lock, at: 24) }

    /// The thread id a lock keeps at `offset`, believed only if the lock's bytes read
    /// the same twice, with a look at that thread's state between.
    private static func threadID(pid: Int32, in lock: UInt64, at offset: Int) -> Int32? {
        let count = offset + 8
        guard let before = Ptrace.readMemory(pid: pid, at: lock, count: count), before.count == count else { return nil }
        let tid = Int32(truncatingIfNeeded: littleEndianWord(before, at: offset))
        guard tid > 0, (try? TaskStatus.read(pid: pid, tid: tid)) != nil,
              let after = Ptrace.readMemory(pid: pid, at: lock, count: count), after == before else { return nil }
        return tid
    }

    /// The cycles of waits: each waiter waits for one owner, so a thread is on at
    /// most one cycle. Each is given from its lowest thread id, and the cycles in
    /// the order of those ids (the same state, the same lines).
    public static func cycles(_ waits: [ThreadWait]) -> [[ThreadWait]] {
        let byWaiter = Dictionary(waits.filter { $0.owner != nil }.map { ($0.waiter, $0) }, uniquingKeysWith: { first, _ in first })
        var cycles: [[ThreadWait]] = []
        var onCycle: Set<Int32> = []
        for start in byWaiter.keys.sorted() where !onCycle.contains(start) {
            var path: [Int32] = []
            var seen: Set<Int32> = []
            var tid = start
            while let wait = byWaiter[tid], let owner = wait.owner, seen.insert(tid).inserted {
                path.append(tid)
                tid = owner
            }
            guard let at = path.firstIndex(of: tid), byWaiter[tid] != nil else { continue }
            let members = Array(path[at...])
            guard !members.contains(where: onCycle.contains) else { continue }
            onCycle.formUnion(members)
            let lowest = members.firstIndex(of: members.min()!)!
            cycles.append((members[lowest...] + members[..<lowest]).map { byWaiter[$0]! })
        }
        return cycles.sorted { $0[0].waiter < $1[0].waiter }
    }
}

/// What a snapshot's waits come to, as comment lines for the top of the profile.
public struct WaitLines: Sendable {
    /// One "deadlock: ..." line for each cycle of waits.
    public var deadlocks: [String] = []
    /// One "convoy: ..." line for each mutex outside a cycle that two threads or more wait for.
    public var convoys: [String] = []
    /// One "file lock: ..." line for each thread blocked taking an advisory file lock.
    public var fileLocks: [String] = []

    public var all: [String] { deadlocks + convoys + fileLocks }
    /// What each blocked thread whose wait is known waits for, for its state line:
    /// "mutex audit_lock held by auditor (26225)".
    public var byThread: [Int32: String] = [:]

    static let deadlockPrefix = "deadlock: "
    static let convoyPrefix = "convoy: "
    static let fileLockPrefix = "file lock: "

    /// Whether a profile's comment is one of these: the target's state, not how the
    /// run went, so it stays where run-specific comments are left out.
    public static func isWaitLine(_ comment: String) -> Bool {
        comment.hasPrefix(deadlockPrefix) || comment.hasPrefix(convoyPrefix) || comment.hasPrefix(fileLockPrefix)
            || SwiftPool.isPoolLine(comment)
    }

    /// Each thread's wait onto its state, for its `# waits:` line.
    public func mark(_ snapshot: inout Snapshot) {
        for index in snapshot.threads.indices {
            if let wait = byThread[snapshot.threads[index].tid] { snapshot.threads[index].state?.wait = wait }
        }
    }
}

extension Profiler {
    /// The deadlocks of `snapshot` (cycles of waits, each from its lowest thread id)
    /// and its lock convoys: for a mutex outside a cycle that two threads or more
    /// wait for, how many, its holder and what the holder is doing (its state and
    /// innermost function). Locks are named by the symbol that covers them
    /// (`audit_lock`, `accounts+0x8`), else by address.
    /// `threadIDs: false` (for --addresses relative) names threads by name alone:
    /// ids change from run to run, the state does not. Every name in the lines is
    /// the target's choice (threads, symbols, files) and quoted where it could
    /// break a line or read as more than a name.
    public static func waitLines(_ snapshot: Snapshot, options: SnapshotOptions, threadIDs: Bool = true) -> WaitLines {
        let waits = ThreadWaits.find(in: snapshot)
        let cycles = ThreadWaits.cycles(waits)
        let onCycle = Set(cycles.flatMap { $0.map(\.waiter) })
        let convoys = Dictionary(grouping: waits.filter { !onCycle.contains($0.waiter) && $0.owner != nil && [.mutex, .rwlock].contains($0.kind) },
                                 by: \.object)
            .filter { $0.value.count >= 2 }.sorted { $0.key < $1.key }
        let threads = Dictionary(snapshot.threads.map { ($0.tid, $0) }, uniquingKeysWith: { first, _ in first })
        func thread(_ tid: Int32) -> String {
            NameQuoting.quoted(threads[tid]?.name ?? "") + (threadIDs ? " (\(tid))" : "")
        }
        var lines = WaitLines()
        for wait in FileLocks.find(in: snapshot) {
            let what = "\(wait.kind.rawValue) on \(NameQuoting.quoted(wait.path)) held by \(holders(wait.holders, threadIDs: threadIDs))"
            lines.fileLocks.append(WaitLines.fileLockPrefix + "\(thread(wait.waiter)) waits for a \(what)")
            lines.byThread[wait.waiter] = what
        }
        guard !waits.isEmpty, let map = try? MemoryMap.read(pid: snapshot.pid) else { return lines }
        let image = TargetImage(pid: snapshot.pid, memoryMap: map, shared: options.sharedModules)
        let symbols = ProcessSymbols(image: image) {
            Symbolizer(pid: snapshot.pid, modules: image.symbolModules(), vdso: nil, options: options.symbolize)
        }
        /// The blocked thread whose stack pointer (from /proc, as a blocked thread's
        /// capture reads it) lies in `region`: the thread whose stack it is.
        var stackPointers: [(tid: Int32, sp: UInt64)]?
        func stackOwners(in region: MemoryRegion) -> Int32? {
            if stackPointers == nil {
                stackPointers = snapshot.threads.compactMap { thread in
                    (try? ProcFile.read("/proc/\(snapshot.pid)/task/\(thread.tid)/syscall"))
                        .flatMap(ThreadProcInfo.parseBlockedAt).map { (thread.tid, $0.sp) }
                }
            }
            let owners = stackPointers!.filter { region.start <= $0.sp && $0.sp < region.end }
            return owners.count == 1 ? owners[0].tid : nil
        }
        /// The symbol covering an object (`audit_lock`, `accounts+0x8`), else where it lies.
        func object(_ address: UInt64) -> (symbol: String?, place: String) {
            if let line = symbols.location(pc: address, isReturnAddress: false)?.lines.last, !line.function.isEmpty {
                let name = NameQuoting.quoted(line.function)
                return (line.offset == 0 ? name : "\(name)+\(hex(line.offset))", "")
            }
            if let region = map.region(containing: address), region.path.isEmpty || region.path == "[stack]",
               let owner = stackOwners(in: region) {
                return (nil, (threadIDs ? "at \(hex(address)) " : "") + "on the stack of \(thread(owner))")
            }
            // Without ids, without the address either: it changes from run to run.
            // Anonymous memory (the heap, a thread's stack no blocked thread is on) has no
            // path: said so, not as a quoted empty name.
            let path = (map.region(containing: address)?.path).flatMap { $0.isEmpty ? nil : NameQuoting.quoted($0) }
            if !threadIDs { return (nil, path.map { "in \($0)" } ?? "in anonymous memory") }
            return (nil, path.map { "at \(hex(address)) (\($0))" } ?? "at \(hex(address)) (anonymous memory)")
        }
        func mutex(_ address: UInt64) -> String {
            let named = object(address)
            return named.symbol ?? "the lock \(named.place)"
        }
        func held(_ wait: ThreadWait) -> String {
            "\(mutex(wait.object)) held \(wait.kind == .rwlock ? "for writing " : "")by \(wait.owner.map(thread) ?? "")"
        }
        func doing(_ tid: Int32) -> String {
            guard let owner = threads[tid] else { return "" }
            let state = owner.state.map { ", \($0.codeName)" } ?? ""
            let function = owner.locations.first { $0.module != "[kernel]" }?.lines.last?.function ?? ""
            return function.isEmpty ? state : "\(state) in \(NameQuoting.quoted(function))"
        }
        for wait in waits {
            let named = object(wait.object)
            let name = named.symbol ?? named.place
            let intent = wait.forWriting ? "for writing" : "for reading"
            switch (wait.kind, wait.owner) {
            case (.mutex, _?): lines.byThread[wait.waiter] = "mutex \(held(wait))"
            case (.rwlock, _?):
                lines.byThread[wait.waiter] = "rwlock \(mutex(wait.object)) \(intent), held for writing by \(wait.owner.map(thread) ?? "")"
            case (.join, let owner?): lines.byThread[wait.waiter] = "the end of \(thread(owner))"
            case (.mutex, nil): lines.byThread[wait.waiter] = "mutex \(name), owner unknown"
            case (.rwlock, nil): lines.byThread[wait.waiter] = "rwlock \(name) \(intent), owner unknown"
            case (.condition, _): lines.byThread[wait.waiter] = "condition variable \(name)"
            case (.semaphore, _): lines.byThread[wait.waiter] = "semaphore \(name)"
            case (.futex, _): lines.byThread[wait.waiter] = "futex \(name)"
            case (.join, nil): break
            }
        }
        lines.deadlocks = cycles.map { cycle in
            WaitLines.deadlockPrefix + cycle.enumerated().map { index, wait in
                (index == 0 ? "\(thread(wait.waiter)) waits for " : "which waits for ")
                    + (wait.kind == .join ? "\(wait.owner.map(thread) ?? "") to end" : held(wait))
            }.joined(separator: ", ")
        }
        lines.convoys = convoys.map { _, waiting in
            WaitLines.convoyPrefix + "\(waiting.count) threads"
                + (threadIDs ? " (\(waiting.map { String($0.waiter) }.joined(separator: ", ")))" : "") + " wait for "
                + "\(held(waiting[0]))\(waiting[0].owner.map(doing) ?? "")"
        }
        return lines
    }

    /// "holder (process 4242)", several joined with commas: each process by its name
    /// (/proc/PID/comm, quoted as thread names are). Without ids, names alone.
    static func holders(_ pids: [Int32], threadIDs: Bool) -> String {
        guard !pids.isEmpty else { return "no process /proc/locks lists (owner unknown)" }
        return pids.map { pid in
            guard pid > 0 else { return "an open file description (owner unknown)" }
            let name = NameQuoting.quoted(threadName(pid: pid, tid: pid))
            return threadIDs ? "\(name) (process \(pid))" : name
        }.joined(separator: ", ")
    }
}
