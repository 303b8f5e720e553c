// Bad input gets one clear line and its exit status; the target is never left stopped.
import Foundation
import Testing

@Suite(.serialized)
struct DumpErrorTests {
    @Test func processThatDoesNotExist() throws {
        let maxPID = Int32((try String(contentsOfFile: "/proc/sys/kernel/pid_max", encoding: .utf8))
            .trimmingCharacters(in: .whitespacesAndNewlines))!
        let pid = try #require((1..<maxPID).reversed().first { !FileManager.default.fileExists(atPath: "/proc/\($0)") })
        let result = try swiftprof("dump", "\(pid)")
        #expect(result.status == 2)
        #expect(result.stderr == "swiftprof: no such process: \(pid)\n")
        #expect(result.stdout.isEmpty)
    }

    @Test func zombie() throws {
        let fixture = try Fixture.c("zombie")
        defer { fixture.stop() }
        let result = try swiftprof("dump", "\(fixture.readyPID)")
        #expect(result.status == 2)
        #expect(result.stderr.contains("process \(fixture.readyPID) is a zombie"))
    }

    /// The main thread ended (pthread_exit), a worker lives on: /proc shows the
    /// leader as Z, yet the process is no zombie. Said as it is, after waiting
    /// long enough to tell it from an execve in progress.
    @Test func aProcessWhoseMainThreadEnded() throws {
        let fixture = try Fixture.c("zombie", arguments: ["leader"])
        defer { fixture.stop() }
        // The survivor prints the ready line before it blocks in read(2): its state may be R or S.
        let leaderEnded = { fixture.threadStates().count == 2 && fixture.threadStates().contains("Z") }
        #expect(leaderEnded())
        let result = try swiftprof("dump", "\(fixture.pid)")
        #expect(result.status == 2)
        #expect(result.stderr == "swiftprof: process \(fixture.pid) cannot be profiled: its main thread has ended, "
                + "and with it the /proc entries its memory is read through (1 other thread lives on)\n")
        #expect(result.stdout.isEmpty)
        #expect(leaderEnded())
    }

    @Test func kernelThread() throws {
        let kernelThread = try #require(KernelThreads.first(), "no kernel thread is visible in this PID namespace")
        let result = try swiftprof("dump", "\(kernelThread)")
        #expect(result.status == 2)
        #expect(result.stderr.contains("is a kernel thread"))
    }

    @Test func permissionDeniedNamesTheMissingCapability() throws {
        let fixture = try Fixture.c("parked")
        defer { fixture.stop() }
        let result = try run("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                                         try Paths.worldExecutable(Paths.swiftprof), "dump", "\(fixture.pid)"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("permission denied tracing process \(fixture.pid)"))
        #expect(result.stderr.contains("CAP_SYS_PTRACE"))
        #expect(result.stderr.split(separator: "\n").count == 1)
        fixture.expectRunning()
    }

    @Test func alreadyTracedNamesTheTracer() throws {
        let target = try Fixture.c("parked")
        defer { target.stop() }
        let tracer = try Fixture.c("tracer", arguments: ["\(target.pid)"])
        let result = try swiftprof("dump", "\(target.pid)")
        #expect(result.status == 2)
        #expect(result.stderr == "swiftprof: process \(target.pid) is already traced by process \(tracer.pid) (tracer); detach it first\n")
        tracer.stop()
        target.expectRunning()
    }

    @Test(arguments: [["dump", "abc"], ["dump", "0"], ["dump", "-5"], ["dump"], ["dump", "1", "--stack-bytes", "1"],
                      ["dump", "1", "--format", "nope"], ["dump", "1", "--memory-map", "--addresses", "relative"],
                      ["nope"]])
    func badUsage(_ arguments: [String]) throws {
        let result = try swiftprof(arguments)
        #expect(result.status == 64, "\(arguments): \(result.stderr)")
        #expect(result.stdout.isEmpty)
    }

    /// Words that say what is allowed (#17): a rate of 0 is not "between 0 and 10000".
    @Test func aZeroRateIsRefusedInWordsThatFit() throws {
        let result = try swiftprof("attach", "--rate", "0", "1")
        #expect(result.status == 64)
        #expect(result.stderr.hasPrefix("Error: --rate must be more than 0 and at most 10000 samples a second\n"), "\(result.stderr)")
    }

    /// gzip data is not written to a terminal (as gzip refuses), checked on a real pty (script(1)).
    @Test func pprofIsNotWrittenToATerminal() throws {
        let fixture = try Fixture.c("parked")
        defer { fixture.stop() }
        let command = "\(Paths.swiftprof) dump --format pprof \(fixture.pid)"
        let onTerminal = try run("script", ["-qec", command, "/dev/null"])
        #expect(onTerminal.status == 64, "\(onTerminal.stdout)")
        #expect(onTerminal.stdout.contains("--format pprof writes gzip data: not to a terminal"), "\(onTerminal.stdout)")
        // Through a pipe it is written.
        let piped = try run("sh", ["-c", "\(command) | od -An -tx1 -N2"])
        #expect(piped.status == 0, "\(piped.stderr)")
        #expect(piped.stdout.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } == ["1f", "8b"],
                "gzip's magic: \(piped.stdout)")
        fixture.expectRunning()
    }

    /// A thread waiting for a vfork child sits in state D and cannot reach a ptrace
    /// stop: a consistent snapshot goes on without it, says so, and exits 1.
    @Test func threadThatCannotStopGivesAPartialSnapshot() throws {
        let fixture = try Fixture.c("vforker")
        defer { fixture.stop() }
        let result = try swiftprof("dump", "--consistent", "--stop-timeout", "50", "\(fixture.pid)")
        #expect(result.status == 1)
        #expect(result.stderr.contains("not captured: did not stop within 50 ms (state D)"))
        let profile = try parseProfile(result.stdout)
        #expect(profile.record(containing: "main") != nil)
        fixture.expectRunning()
    }

    /// The default capture needs no stop for a blocked thread. vfork keeps its
    /// return address in a register /proc does not give, so the walk from sp and
    /// pc stops at __vfork: that stack is kept, marked truncated, rather than lost.
    @Test func threadThatCannotStopKeepsWhatProcGives() throws {
        let fixture = try Fixture.c("vforker")
        defer { fixture.stop() }
        let result = try swiftprof("dump", "--stop-timeout", "50", "\(fixture.pid)")
        #expect(result.status == 0, "\(result.stderr)")
        let profile = try parseProfile(result.stdout)
        let vforking = try #require(profile.record(containing: "__vfork"))
        #expect(vforking.state?.code == "D")
        #expect(vforking.state?.systemCall?.name == "vfork")
        #expect(vforking.truncation != nil)
        #expect(profile.record(containing: "main")?.truncation == nil)
        fixture.expectRunning()
    }
}

enum KernelThreads {
    /// PIDs whose stat flags carry PF_KTHREAD.
    static func first() -> Int32? {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for pid in entries.compactMap(Int32.init).sorted() {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 6, let flags = UInt64(fields[6]), flags & 0x0020_0000 != 0 { return pid }
        }
        return nil
    }
}
