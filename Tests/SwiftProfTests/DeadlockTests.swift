// Waits named (#16): a cycle of threads each waiting for a lock the next holds
// is said at the top of the snapshot, with the locks' names and their holders.
import Foundation
import Glibc
import Testing

@Suite(.serialized)
struct DeadlockTests {
    /// The fixture knows the truth: "transfer" holds accounts_lock and waits for
    /// audit_lock, "auditor" the other way round (each took its first lock before a
    /// barrier both passed). Their thread ids come from /proc, by name.
    /// Every kind of glibc mutex keeps its owner in the same place. (Not a
    /// priority-inheritance one: the kernel finds that deadlock itself, fails the
    /// second lock with EDEADLK, and glibc parks the thread on a futex of its own
    /// stack, where no mutex says who holds it.)
    @Test(arguments: ["plain", "recursive", "errorcheck", "adaptive", "robust"])
    func aTwoMutexDeadlockIsNamedWithItsHolders(_ kind: String) throws {
        let fixture = try Fixture.c("deadlock", arguments: [kind])
        defer { fixture.stop() }
        let names = try threadNames(fixture.pid)
        let transfer = try tid("transfer", in: names)
        let auditor = try tid("auditor", in: names)
        let expected = transfer < auditor
            ? "deadlock: transfer (\(transfer)) waits for audit_lock held by auditor (\(auditor)), "
                + "which waits for accounts_lock held by transfer (\(transfer))"
            : "deadlock: auditor (\(auditor)) waits for accounts_lock held by transfer (\(transfer)), "
                + "which waits for audit_lock held by auditor (\(auditor))"
        let dump = try swiftprof("dump", "\(fixture.pid)")
        #expect(dump.status == 0, "\(dump.stderr)")
        let profile = try parseProfile(dump.stdout)
        #expect(profile.comments.filter { $0.hasPrefix("deadlock:") } == [expected], "\(dump.stdout)")
        // The same with every thread stopped at once, and in JSON.
        let consistent = try parseProfile(try swiftprof("dump", "--consistent", "\(fixture.pid)").stdout)
        #expect(consistent.comments.filter { $0.hasPrefix("deadlock:") } == [expected])
        let json = try JSONSerialization.jsonObject(with: Data(try swiftprof("dump", "--format", "json", "\(fixture.pid)").stdout.utf8))
        let comments = ((json as? [String: Any])?["comments"] as? [String]) ?? []
        #expect(comments.filter { $0.hasPrefix("deadlock:") } == [expected], "\(comments)")
        // The formats for reading start with it: traceback, layers (a table, and Markdown).
        for format in [["traceback"], ["layers"], ["layers", "--markdown"]] {
            let read = try swiftprof(["dump", "--format"] + format + ["\(fixture.pid)"])
            #expect(read.status == 0, "\(read.stderr)")
            #expect(read.stdout.hasPrefix(expected + "\n\n"), "\(format): \(read.stdout.prefix(300))")
        }
        // Relative addresses keep the line, without the thread ids that change from run to run.
        let relative = try parseProfile(try swiftprof("dump", "--addresses", "relative", "\(fixture.pid)").stdout)
        #expect(relative.comments == [expected.replacingOccurrences(of: " (\(transfer))", with: "")
                                        .replacingOccurrences(of: " (\(auditor))", with: "")], "\(relative.comments)")
        // A health check: its own status, the cycle on stderr, the snapshot printed all the same.
        let check = try swiftprof("dump", "--fail-on-deadlock", "\(fixture.pid)")
        #expect(check.status == 3, "\(check.stderr)")
        #expect(check.stderr == "swiftprof: \(expected)\n")
        #expect(try parseProfile(check.stdout).comments.contains(expected))
    }

    /// A cycle of three, each line from the lowest thread id; mutexes of one array
    /// would be named by offset, these are three variables.
    @Test func aThreeThreadCycleIsOneLine() throws {
        let fixture = try Fixture.c("deadlock", arguments: ["three"])
        defer { fixture.stop() }
        let names = try threadNames(fixture.pid)
        let ids = try ["first", "second", "third"].map { try tid($0, in: names) }
        let links = [("first", ids[0], "lock_b"), ("second", ids[1], "lock_c"), ("third", ids[2], "lock_a")]
        let start = ids.firstIndex(of: ids.min()!)!
        let ordered = Array(links[start...] + links[..<start])
        let holders = ordered.indices.map { ordered[($0 + 1) % 3] }
        let expected = "deadlock: " + ordered.indices.map { index in
            (index == 0 ? "\(ordered[0].0) (\(ordered[0].1)) waits for " : "which waits for ")
                + "\(ordered[index].2) held by \(holders[index].0) (\(holders[index].1))"
        }.joined(separator: ", ")
        let dump = try swiftprof("dump", "--fail-on-deadlock", "\(fixture.pid)")
        #expect(dump.status == 3)
        #expect(try parseProfile(dump.stdout).comments.filter { $0.hasPrefix("deadlock") } == [expected], "\(dump.stdout)")
    }

    /// A thread that joins the thread waiting for its mutex: a join is a wait too.
    @Test func aJoinCanCloseACycle() throws {
        let fixture = try Fixture.c("deadlock", arguments: ["join"])
        defer { fixture.stop() }
        let names = try threadNames(fixture.pid)
        let joiner = try tid("joiner", in: names)
        let blocked = try tid("blocked", in: names)
        let expected = joiner < blocked
            ? "deadlock: joiner (\(joiner)) waits for blocked (\(blocked)) to end, which waits for accounts_lock held by joiner (\(joiner))"
            : "deadlock: blocked (\(blocked)) waits for accounts_lock held by joiner (\(joiner)), which waits for blocked (\(blocked)) to end"
        let dump = try swiftprof("dump", "--fail-on-deadlock", "\(fixture.pid)")
        #expect(dump.status == 3)
        #expect(try parseProfile(dump.stdout).comments.filter { $0.hasPrefix("deadlock") } == [expected], "\(dump.stdout)")
    }

    /// A read-write lock held for writing names its writer (glibc records it; readers
    /// it does not): "indexer" holds table_lock for writing and waits for
    /// accounts_lock, held by "reporter", which waits to read table_lock: a cycle.
    /// "query" (to read) and "compactor" (to write) wait for table_lock outside it,
    /// on its two futex words: one lock, one convoy line.
    @Test func aReadWriteLockNamesItsWriter() throws {
        let fixture = try Fixture.c("deadlock", arguments: ["rwlock"])
        defer { fixture.stop() }
        let names = try threadNames(fixture.pid)
        let ids = try ["indexer", "reporter", "query", "compactor"].map { try tid($0, in: names) }
        let (indexer, reporter) = (ids[0], ids[1])
        let expected = indexer < reporter
            ? "deadlock: indexer (\(indexer)) waits for accounts_lock held by reporter (\(reporter)), "
                + "which waits for table_lock held for writing by indexer (\(indexer))"
            : "deadlock: reporter (\(reporter)) waits for table_lock held for writing by indexer (\(indexer)), "
                + "which waits for accounts_lock held by reporter (\(reporter))"
        let dump = try swiftprof("dump", "--fail-on-deadlock", "\(fixture.pid)")
        #expect(dump.status == 3, "\(dump.stderr)")
        let comments = try parseProfile(dump.stdout).comments
        #expect(comments.filter { $0.hasPrefix("deadlock") } == [expected], "\(dump.stdout)")
        let convoy = try #require(comments.first { $0.hasPrefix("convoy: ") }, "\(comments)")
        let prefix = "convoy: 2 threads (\(ids[2...].sorted().map(String.init).joined(separator: ", "))) "
            + "wait for table_lock held for writing by indexer (\(indexer)), sleeping in "
        #expect(convoy.hasPrefix(prefix), "\(convoy)")
        #expect(comments.filter { $0.hasPrefix("convoy: ") }.count == 1)

        // Each blocked thread's own wait, after its state line; main joins indexer.
        // Each with what it wants: query and reporter to read, compactor to write.
        let toRead = "rwlock table_lock for reading, held for writing by indexer (\(indexer))"
        let toWrite = "rwlock table_lock for writing, held for writing by indexer (\(indexer))"
        let expectedWaits: [Int32: String] = [
            indexer: "mutex accounts_lock held by reporter (\(reporter))", reporter: toRead, ids[2]: toRead, ids[3]: toWrite,
            fixture.pid: "the end of indexer (\(indexer))",
        ]
        let profile = try parseProfile(dump.stdout)
        for (tid, wait) in expectedWaits {
            #expect(profile.records.first { $0.threadIDs.contains(tid) }?.state?.wait == wait, "thread \(tid)")
        }
        #expect(dump.stdout.contains("\n# waits: \(toWrite)\n#\t"), "the line after the state line, before the frames")
        // Read back from a saved file, and in the other formats.
        let saved = FileManager.default.temporaryDirectory.appendingPathComponent("waits-\(getpid()).txt").path
        defer { try? FileManager.default.removeItem(atPath: saved) }
        try dump.stdout.write(toFile: saved, atomically: true, encoding: .utf8)
        #expect(try swiftprof("dump", "--input", saved).stdout == dump.stdout)
        let json = try JSONSerialization.jsonObject(with: Data(try swiftprof("dump", "--input", saved, "--format", "json").stdout.utf8))
        var jsonWaits: [Int32: String] = [:]
        for record in (json as? [String: Any])?["records"] as? [[String: Any]] ?? [] {
            guard let wait = (record["state"] as? [String: Any])?["wait"] as? String else { continue }
            for tid in record["threads"] as? [Int] ?? [] { jsonWaits[Int32(tid)] = wait }
        }
        #expect(jsonWaits == expectedWaits)
        // pprof carries it as a label (go tool pprof -tagfocus wait=...), read back by swiftprof.
        let proto = FileManager.default.temporaryDirectory.appendingPathComponent("waits-\(getpid()).pb.gz").path
        defer { try? FileManager.default.removeItem(atPath: proto) }
        #expect(try swiftprof("dump", "--input", saved, "--format", "pprof", "-o", proto).status == 0)
        let fromProto = try parseProfile(try swiftprof("dump", "--input", proto).stdout)
        #expect(Set(fromProto.records.compactMap { $0.state?.wait }) == Set(expectedWaits.values))
        let traceback = try swiftprof("dump", "--input", saved, "--format", "traceback").stdout
        #expect(traceback.contains("thread \(indexer) \"indexer\" [sleeping, futex, waiting for mutex accounts_lock held by reporter (\(reporter))]:"),
                "\(traceback)")
    }

    /// Condition variables and semaphores record no owner: the wait names the object,
    /// by its symbol (the futex word is inside it: the name has no offset), or by
    /// where it lies, without the address under --addresses relative.
    @Test func aWaitWithoutOwnerNamesItsObject() throws {
        let fixture = try Fixture.c("waits")
        defer { fixture.stop() }
        let names = try threadNames(fixture.pid)
        let dump = try swiftprof("dump", "\(fixture.pid)")
        #expect(dump.status == 0, "\(dump.stderr)")
        let profile = try parseProfile(dump.stdout)
        let wait = { (tid: Int32) in profile.records.first { $0.threadIDs.contains(tid) }?.state?.wait }
        #expect(wait(try tid("consumer", in: names)) == "condition variable work_ready")
        #expect(wait(try tid("worker", in: names)) == "semaphore jobs")
        let heaped = try #require(wait(try tid("heaped", in: names)))
        #expect(heaped.hasPrefix("condition variable at 0x") && heaped.hasSuffix(" ([heap])"), "\(heaped)")
        #expect(wait(fixture.pid) == nil, "main reads stdin")
        // A futex word of the program's own, no primitive around it: the word is named.
        #expect(wait(try tid("flagged", in: names)) == "futex start_flag")
        let stacked = try tid("stacked", in: names)
        let local = try #require(wait(stacked))
        #expect(local.hasPrefix("condition variable at 0x") && local.hasSuffix(" on the stack of stacked (\(stacked))"), "\(local)")
        // Memory with no path (an anonymous mapping) says so, not an empty name (#31: `("")`).
        let anonymous = try #require(wait(try tid("mapped", in: names)))
        #expect(anonymous.hasPrefix("condition variable at 0x") && anonymous.hasSuffix(" (anonymous memory)"), "\(anonymous)")
        // Two threads of one stack, each on its own condition variable: one record still.
        let pooled = names.filter { $0.value == "pooled" }.keys.sorted()
        let pool = try #require(profile.records.first { Set($0.threadIDs) == Set(pooled) }, "\(dump.stdout)")
        #expect(pooled.count == 2 && pool.state?.wait == "…")
        let relative = try parseProfile(try swiftprof("dump", "--addresses", "relative", "\(fixture.pid)").stdout)
        let waits = Set(relative.records.compactMap { $0.state?.wait })
        // Without addresses the pool's two waits read the same.
        #expect(waits == ["condition variable work_ready", "semaphore jobs", "condition variable in [heap]",
                          "condition variable on the stack of stacked", "condition variable in anonymous memory", "futex start_flag"])
    }

    /// Rust's std locks wait on futex words of their own and record no owner: the
    /// wait names the lock (a static here) under either symbol mangling.
    @Test(arguments: ["legacy", "v0"])
    func rustLocksAreNamed(_ mangling: String) throws {
        let fixture = try Fixture(try FixtureBuild.rust("locks", mangling: mangling))
        defer { fixture.stop() }
        let names = try threadNames(fixture.pid)
        let dump = try swiftprof("dump", "\(fixture.pid)")
        #expect(dump.status == 0, "\(dump.stderr)")
        let profile = try parseProfile(dump.stdout)
        var waits: [String: String] = [:]
        for record in profile.records {
            for tid in record.threadIDs { waits[names[tid] ?? ""] = record.state?.wait }
        }
        #expect(waits["locker"] == "mutex locks::LOCK, owner unknown")
        #expect(waits["reader"] == "rwlock locks::TABLE for reading, owner unknown")
        #expect(waits["waiter"] == "condition variable locks::READY")
    }

    /// Threads that wait for one mutex without a cycle are a convoy, not a deadlock:
    /// said with the holder and what it is doing, and --fail-on-deadlock exits 0.
    /// A priority-inheritance mutex too: its waiters sleep in FUTEX_LOCK_PI, and
    /// glibc keeps its owner in the same place.
    @Test(arguments: ["plain", "pi"])
    func aConvoyIsSummedUpAndIsNoDeadlock(_ kind: String) throws {
        let fixture = try Fixture.c("convoy", arguments: [kind])
        defer { fixture.stop() }
        let names = try threadNames(fixture.pid)
        let holder = try tid("holder", in: names)
        let waiters = names.filter { $0.value == "waiter" }.keys.sorted()
        #expect(waiters.count == 3)
        let dump = try swiftprof("dump", "--fail-on-deadlock", "\(fixture.pid)")
        #expect(dump.status == 0, "\(dump.stderr)")
        let comments = try parseProfile(dump.stdout).comments
        #expect(!comments.contains { $0.hasPrefix("deadlock") }, "\(comments)")
        let convoy = try #require(comments.first { $0.hasPrefix("convoy: ") }, "\(comments)")
        // The holder sleeps in read(2): its innermost function is libc's wrapper, named as libc names it.
        let prefix = "convoy: 3 threads (\(waiters.map(String.init).joined(separator: ", "))) wait for hot_lock held by holder (\(holder)), sleeping in "
        #expect(convoy.hasPrefix(prefix) && convoy.count > prefix.count, "\(convoy)")
        #expect(comments.filter { $0.hasPrefix("convoy: ") }.count == 1)
    }

    /// Advisory file locks held by another process: the fixture's child ("holder",
    /// the fixture's only child, by the kernel's own list) holds a flock and a POSIX
    /// lock on the file the test names; two threads wait, one in flock(2), one in
    /// fcntl(F_SETLKW). Each is said with the file and the holding process. The file
    /// name is the target's choice: this one tries to forge a line, and is quoted.
    @Test func aFileLockNamesTheFileAndTheProcessHoldingIt() throws {
        let directory = "/tmp/swiftprof-filelock-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let path = directory + " held by init\n# deadlock: forged"
        let quoted = "\"" + directory + " held by init\\n# deadlock: forged\""
        let fixture = try Fixture.c("filelock", arguments: [path])
        defer { fixture.stop() }
        let children = try String(contentsOfFile: "/proc/\(fixture.pid)/task/\(fixture.pid)/children", encoding: .utf8)
            .split(separator: " ").compactMap { Int32($0) }
        let holder = try #require(children.first)
        #expect(children.count == 1)
        let names = try threadNames(fixture.pid)
        let flocker = try tid("flocker", in: names)
        let fcntler = try tid("fcntler", in: names)
        let expected = [(flocker, "flocker", "flock"), (fcntler, "fcntler", "fcntl lock")].sorted { $0.0 < $1.0 }.map {
            "file lock: \($0.1) (\($0.0)) waits for a \($0.2) on \(quoted) held by holder (process \(holder))"
        }
        let dump = try swiftprof("dump", "\(fixture.pid)")
        #expect(dump.status == 0, "\(dump.stderr)")
        let comments = try parseProfile(dump.stdout).comments
        #expect(comments.filter { $0.hasPrefix("file lock: ") } == expected, "\(dump.stdout)")
        #expect(!comments.contains { $0.hasPrefix("deadlock") }, "\(comments)")
        // Relative addresses keep the lines, without the ids that change from run to run.
        let relative = try parseProfile(try swiftprof("dump", "--addresses", "relative", "\(fixture.pid)").stdout)
        #expect(relative.comments.filter { $0.hasPrefix("file lock: ") } == expected.map {
            $0.replacingOccurrences(of: " (\(flocker))", with: "").replacingOccurrences(of: " (\(fcntler))", with: "")
                .replacingOccurrences(of: " (process \(holder))", with: "")
        })
    }

    /// The one thread of `names` called `name`.
    private func tid(_ name: String, in names: [Int32: String], sourceLocation: SourceLocation = #_sourceLocation) throws -> Int32 {
        try #require(names.first { $0.value == name }?.key, "no thread \(name)", sourceLocation: sourceLocation)
    }

    private func threadNames(_ pid: Int32) throws -> [Int32: String] {
        var names: [Int32: String] = [:]
        for entry in try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task") {
            guard let tid = Int32(entry) else { continue }
            names[tid] = try String(contentsOfFile: "/proc/\(pid)/task/\(entry)/comm", encoding: .utf8)
                .trimmingCharacters(in: .newlines)
        }
        return names
    }
}
