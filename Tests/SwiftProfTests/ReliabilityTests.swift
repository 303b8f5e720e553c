// The target survives anything swiftprof does or suffers: its death at any
// moment, signals arriving while threads are held, threads and processes that
// come and go, stacks that lie. Every test checks the target afterwards.
import Foundation
import Glibc
import Testing

@Suite(.serialized)
struct ReliabilityTests {
    /// SWIFTPROF_STRESS_TRIALS raises the count (`make stress`).
    static let trials = Int(ProcessInfo.processInfo.environment["SWIFTPROF_STRESS_TRIALS"] ?? "") ?? 30

    /// swiftprof killed with SIGKILL at random moments of every capture phase:
    /// the kernel detaches what it held; no thread may stay stopped.
    @Test(.timeLimit(.minutes(5)))
    func tracerDeathNeverLeavesTheTargetStopped() throws {
        let fixture = try Fixture.c("wide", arguments: ["32", "10"])
        defer { fixture.stop() }
        var random = ReaderFuzzTests.Random(state: 0xdead_beef)
        let modes = [["dump"], ["dump", "--consistent"], ["attach", "--rate", "1000"]]
        for trial in 0..<Self.trials {
            let mode = modes[trial % modes.count]
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Paths.swiftprof)
            process.arguments = mode + ["\(fixture.pid)"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            // The point is an arbitrary moment: start-up, seizing, copying, unwinding, detaching.
            usleep(UInt32(random.below(mode[0] == "attach" ? 80_000 : 40_000)))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            let states = fixture.threadStates()
            #expect(!states.contains("t") && !states.contains("T"), "trial \(trial) (\(mode)): \(states)")
            #expect(fixture.ask("report")?.hasPrefix("late_max_us ") == true, "trial \(trial): the target does not answer")
        }
    }

    /// Real-time signals sent while `attach --rate 1000` stops the receiving thread
    /// again and again: each arrives once, in order.
    @Test(.timeLimit(.minutes(2)))
    func signalsArriveOnceAndInOrderWhileSampling() throws {
        let fixture = try Fixture.c("signals")
        defer { fixture.stop() }
        let attach = try Streaming(Paths.swiftprof, ["attach", "--rate", "1000", "--progress", "\(fixture.pid)"])
        _ = attach.readErrorLine()  // sampling is under way
        let count: Int32 = 2000
        let sigrtmin: Int32 = 34  // glibc's SIGRTMIN (a function in C, so not importable)
        for value in 1...count {
            while sigqueue(fixture.pid, sigrtmin, sigval(sival_int: value)) != 0 {
                #expect(errno == EAGAIN, "sigqueue: \(errno)")
                sched_yield()  // the queue is full: let the receiver catch up
            }
        }
        try poll { fixture.ask("report") == "received \(count) order ok" || fixture.ask("report")?.contains("broken") == true }
        #expect(fixture.ask("report") == "received \(count) order ok")
        kill(attach.process.processIdentifier, SIGINT)
        let (status, profile) = attach.finish()
        #expect(status == 0)
        #expect(profile.contains("keep_busy"))
        fixture.expectRunning()
    }

    @Test(.timeLimit(.minutes(1)))
    func aStoppedProcessStaysStoppedThroughAttach() throws {
        let fixture = try Fixture.c("parked")
        defer { kill(fixture.pid, SIGCONT); fixture.stop() }
        kill(fixture.pid, SIGSTOP)
        try waitUntil { fixture.threadStates().allSatisfy { $0 == "T" } }
        let result = try swiftprof("attach", "--duration", "0.3s", "\(fixture.pid)")
        #expect(result.status == 0)
        #expect(result.stderr.contains("was stopped by a signal and stays stopped"))
        #expect(fixture.threadStates().allSatisfy { $0 == "T" })
        kill(fixture.pid, SIGCONT)
        try waitUntil { !fixture.threadStates().contains("T") }
    }

    /// Threads created and ended at about 1 kHz, children forked, the image
    /// re-executed, the process ending: every run ends, in the documented way.
    @Test(.timeLimit(.minutes(2)), arguments: ["threads", "fork", "exec"])
    func threadsAndProcessesComingAndGoing(_ mode: String) throws {
        let fixture = try Fixture.c("churn", arguments: [mode])
        defer { fixture.stop() }
        for _ in 0..<3 {
            let dump = try swiftprof("dump", "\(fixture.pid)")
            #expect(dump.status == 0 || dump.status == 1, "\(dump.stderr)")
            _ = try parseProfile(dump.stdout)
        }
        let attach = try swiftprof("attach", "--duration", "0.5s", "--rate", "500", "\(fixture.pid)")
        #expect(attach.status == 0 || attach.status == 1, "\(attach.stderr)")
        _ = try parseProfile(attach.stdout)
        fixture.expectRunning()
        #expect(fixture.ask("report") == "alive")
    }

    @Test(.timeLimit(.minutes(1)))
    func aTargetThatExitsMidRunGivesAPartialProfile() throws {
        let fixture = try Fixture.c("churn", arguments: ["exit"])
        let result = try swiftprof("attach", "--duration", "5s", "--rate", "200", "\(fixture.pid)")
        fixture.stop()
        #expect(result.status == 1)
        #expect(result.stderr.contains("process \(fixture.pid) exited after "))
        #expect(try parseProfile(result.stdout).record(containing: "spawner") != nil)
    }

    /// Deep recursion, code with no ELF behind it, a tiny signal stack, smashed
    /// frame pointers and return addresses: bounded work, marked stacks, no crash;
    /// the code with no ELF walked through to its caller.
    @Test(.timeLimit(.minutes(1)))
    func hostileStacks() throws {
        let fixture = try Fixture(try FixtureBuild.executable("hostile", flags: ["-O1", "-g", "-fno-omit-frame-pointer"]))
        defer { fixture.stop() }
        for mode in [[], ["--consistent"]] {
            let result = try swiftprof(["dump", "--no-kernel"] + mode + ["\(fixture.pid)"])
            #expect(result.status == 0, "\(result.stderr)")
            let profile = try parseProfile(result.stdout)
            #expect(profile.records.reduce(0) { $0 + $1.count } == 5)
            let deep = try #require(profile.record(containing: "deep"))
            #expect(deep.truncation == "depth limit of 256 frames reached")
            #expect(deep.locations.count == 256)
            // Spinning in anonymous code with no frame of its own: its caller is the word at
            // sp, just after a call (eu-stack's frame-pointer walk skips that caller).
            let jit = try #require(profile.records.first { $0.threadNames == ["jit"] })
            #expect(jit.truncation == nil)
            #expect(jit.userFunctions == ["", "jit_thread", "start_thread", "__clone3"], "\(result.stdout)")
            #expect(jit.frame("jit_thread")?.line == sourceLine("Fixtures/c/hostile.c", containing: "((void (*)(void))code)();"))
            #expect(profile.records.first { $0.threadNames == ["smashed"] }?.truncation != nil)
            #expect(profile.record(containing: "in_handler") != nil)
        }
        // Asked for, the whole recursion: 100,001 frames, in bounded time and memory.
        let all = try swiftprof("dump", "--no-kernel", "--max-frames", "100010", "--stack-bytes", "16777216", "\(fixture.pid)")
        let deep = try #require(try parseProfile(all.stdout).record(containing: "deep"))
        #expect(deep.userFunctions.filter { $0 == "deep" }.count == 100_001)
        // Every writer, and reading the result back, without recursing per frame (the
        // flame graph did, and crashed on its 8 MiB stack).
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftprof-deep-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let saved = directory + "/deep.txt"
        try all.stdout.write(toFile: saved, atomically: false, encoding: .utf8)
        for format in ["flamegraph", "folded", "speedscope", "pprof", "json", "traceback", "layers", "mermaid"] {
            let converted = try swiftprof("dump", "--input", saved, "--format", format, "-o", directory + "/out." + format)
            #expect(converted.status == 0, "\(format): \(converted.stderr.prefix(300))")
        }
        fixture.expectRunning()
        #expect(fixture.ask("report") == "alive")
    }

    /// A stripped copy (CFI kept, symbols gone), one deleted after start, and one
    /// whose debug link names a debug file of another build.
    @Test(.timeLimit(.minutes(1)))
    func strippedDeletedAndMismatchedBinaries() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftprof-binaries-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let original = try FixtureBuild.executable("parked")
        let stripped = directory.appendingPathComponent("parked-stripped").path
        #expect(try run("strip", ["-o", stripped, original]).status == 0)
        // The debug link names the debug file of another program (another build ID):
        // its names must not be used.
        let mismatched = directory.appendingPathComponent("parked-mismatched").path
        let other = directory.appendingPathComponent("other.debug").path
        let otherBuild = try FixtureBuild.executable("eintr")
        #expect(try run("objcopy", ["--only-keep-debug", otherBuild, other]).status == 0)
        #expect(try run("objcopy", ["--add-gnu-debuglink=\(other)", stripped, mismatched]).status == 0)
        let deleted = directory.appendingPathComponent("parked-deleted").path
        try FileManager.default.copyItem(atPath: original, toPath: deleted)

        for (binary, named) in [(stripped, false), (mismatched, false), (deleted, true)] {
            let fixture = try Fixture(binary)
            defer { fixture.stop() }
            if binary == deleted { try FileManager.default.removeItem(atPath: deleted) }
            let result = try swiftprof("dump", "--no-kernel", "\(fixture.pid)")
            #expect(result.status == 0, "\(binary): \(result.stderr)")
            let profile = try parseProfile(result.stdout)
            let workers = try #require(profile.record(containing: "___pthread_cond_wait"), "\(binary)")
            #expect(workers.count == 8)
            #expect(workers.truncation == nil, "\(binary): the CFI is still there")
            #expect(workers.userFunctions.contains("worker_wait") == named, "\(binary): \(workers.userFunctions)")
            #expect(!profile.records.flatMap(\.userFunctions).contains { ["wait_for_events", "waiter"].contains($0) })
            fixture.expectRunning()
        }
    }

    @Test func aProcessUnderStraceIsNamedAsTraced() throws {
        let fixture = try Fixture.c("parked")
        defer { fixture.stop() }
        let strace = try Fixture("/usr/bin/env", arguments: ["sh", "-c", "echo ready $$; exec strace -p \(fixture.pid) -o /dev/null"])
        // SIGKILL: our runner's threads block SIGTERM, and strace keeps the mask it inherits.
        defer { kill(strace.readyPID, SIGKILL); strace.stop() }
        try waitUntil { (try? String(contentsOfFile: "/proc/\(fixture.pid)/status", encoding: .utf8))?.contains("TracerPid:\t\(strace.readyPID)") == true }
        let result = try swiftprof("dump", "\(fixture.pid)")
        #expect(result.status == 2)
        #expect(result.stderr == "swiftprof: process \(fixture.pid) is already traced by process \(strace.readyPID) (strace); detach it first\n")
    }

    /// PID 1 of a new PID namespace, profiled from outside it.
    @Test func pidOneOfANewNamespace() throws {
        let fixture = try Fixture("/usr/bin/unshare", arguments: ["--pid", "--fork", "--mount-proc", try FixtureBuild.executable("parked")])
        defer { fixture.stop() }
        #expect(fixture.readyPID == 1)  // what it sees of itself
        let children = try String(contentsOfFile: "/proc/\(fixture.pid)/task/\(fixture.pid)/children", encoding: .utf8)
        let pid = try #require(Int32(children.split(separator: " ").first ?? ""))
        let result = try swiftprof("dump", "\(pid)")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try parseProfile(result.stdout).record(containing: "worker_wait")?.count == 8)
    }

    /// 2,000 threads: swiftprof's memory stays bounded by --stack-bytes (it keeps
    /// one copy at a time, or all of them with --consistent), and --max-threads
    /// caps the threads taken.
    @Test(.timeLimit(.minutes(2)))
    func twoThousandThreadsInBoundedMemory() throws {
        let fixture = try Fixture.c("wide", arguments: ["2000", "5"])
        defer { fixture.stop() }
        for mode in [[], ["--consistent"]] {
            // Its own high-water mark (--stats: VmHWM): the wait status's maxrss would be the
            // test process's, which posix_spawn's child inherits at its exec.
            let result = try swiftprof(["dump", "--stats", "-o", "/dev/null", "--stack-bytes", "65536"] + mode + ["\(fixture.pid)"])
            #expect(result.status == 0)
            let peak = try #require(result.stderr.split(separator: "peak memory ").last.flatMap { Int($0.prefix { $0.isNumber }) },
                                    "\(result.stderr)")
            #expect(peak > 0 && peak < 128, "\(mode): peak memory \(peak) MiB")
        }
        let full = try parseProfile(try swiftprof("dump", "--no-kernel", "\(fixture.pid)").stdout)
        #expect(full.records.reduce(0) { $0 + $1.count } == 2003)
        let capped = try swiftprof("dump", "--max-threads", "100", "\(fixture.pid)")
        #expect(capped.status == 1)
        #expect(try parseProfile(capped.stdout).records.reduce(0) { $0 + $1.count } == 100)
        #expect(capped.stderr.split(separator: "\n").count == 1)
        #expect(capped.stderr.contains("1903 threads ("))
        #expect(capped.stderr.hasSuffix("not captured: over the limit of 100 threads (--max-threads)\n"))
        // The profile says it too, where it is read later.
        #expect(capped.stdout.contains("\n# not captured: 1903 threads: over the limit of 100 threads (--max-threads)\n"), "\(capped.stdout.prefix(300))")
        fixture.expectRunning()
    }
}
