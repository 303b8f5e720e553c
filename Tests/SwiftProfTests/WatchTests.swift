// `swiftprof watch`: a process watched while it works, then hangs. Fixtures/c/hang.c
// computes in transfer_work and audit_work until told to deadlock, and says when
// both threads are blocked ("deadlocked at T", CLOCK_MONOTONIC): the watch must end
// within 2 s of that (it looks once a second, at 10 Hz), with status 3 and files
// that name the cycle and show the work before it.
import Foundation
import Glibc
import Testing

@Suite(.serialized) struct WatchTests {
    private static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) * 1e9 + Double(time.tv_nsec)
    }

    /// `swiftprof watch ARGUMENTS` started, its stderr read line by line.
    private static func start(_ arguments: [String]) throws -> (Process, FileHandle) {
        let watch = Process()
        watch.executableURL = URL(fileURLWithPath: Paths.swiftprof)
        watch.arguments = ["watch"] + arguments
        let errors = Pipe()
        watch.standardError = errors
        watch.standardOutput = FileHandle.nullDevice
        try watch.run()
        return (watch, errors.fileHandleForReading)
    }

    @Test func aDeadlockAsItFormsIsCaughtWithWhatLedToIt() throws {
        let fixture = try Fixture(try FixtureBuild.executable("hang"))
        defer { fixture.stop() }
        let directory = try FormatsTests.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let output = directory.appendingPathComponent("hang").path
        let (watch, errors) = try Self.start(["\(fixture.pid)", "--until", "deadlock", "-o", output])
        defer { if watch.isRunning { watch.terminate() } }
        let ready = try #require(Fixture.readLine(errors))
        #expect(ready.hasPrefix("swiftprof: watching process \(fixture.pid) (hang) until deadlock; window 30 s at 10 Hz"), "\(ready)")
        let formed = try #require(fixture.ask("deadlock").flatMap { Double($0.split(separator: " ").last ?? "") })
        let fired = try #require(Fixture.readLine(errors))
        let lag = (Self.now() - formed) / 1e9
        #expect(fired.hasPrefix("swiftprof: deadlock: "), "\(fired)")
        #expect(fired.contains("transfer (") && fired.contains("auditor ("), "\(fired)")
        #expect(lag < 2, "fired \(lag) s after the deadlock formed")
        var rest: [String] = []
        while let line = Fixture.readLine(errors) { rest.append(line) }
        watch.waitUntilExit()
        #expect(watch.terminationStatus == 3, "\(rest)")
        // The snapshot names the cycle, as dump does.
        let snapshot = try String(contentsOfFile: output + "/snapshot.txt", encoding: .utf8)
        #expect(snapshot.contains("\n# deadlock: transfer ("), "\(snapshot)")
        // The window shows the work before the hang, and the hang.
        // (The deadlock is asked for as soon as the watch is ready: the work is in its first ticks.)
        let window = try run("go", ["tool", "pprof", "-top", "-nodefraction=0", output + "/window.pb.gz"], environment: FormatsTests.goEnvironment)
        #expect(window.stdout.contains("Type: wall") && (window.stdout.contains("transfer_work") || window.stdout.contains("audit_work")),
                "\(window.stdout)\(window.stderr)")
        let trace = try JSONDecoder().decode(TimelineTests.File.self, from: Data(contentsOf: URL(fileURLWithPath: output + "/window.trace.json")))
        let names = trace.traceEvents.filter { $0.ph == "M" && $0.name == "thread_name" }.compactMap { $0.args?["name"] }
        #expect(names.contains { $0.hasPrefix("transfer ") } && names.contains { $0.hasPrefix("auditor ") }, "\(names)")
        // transfer's track: working first (running), blocked last.
        let transfer = try #require(trace.traceEvents.first { $0.ph == "M" && $0.args?["name"]?.hasPrefix("transfer ") == true }?.tid)
        let states = trace.traceEvents.filter { $0.tid == transfer && $0.cat == "state" }.sorted { $0.ts! < $1.ts! }
        #expect(states.contains { $0.name == "running" } && states.last?.name == "sleeping in futex (mutex)", "\(states.map(\.name))")
        fixture.expectRunning()
    }

    /// A thread blocked on a mutex longer than the bound is a stall (here, the deadlock's).
    @Test func aStallOnALockFires() throws {
        let fixture = try Fixture(try FixtureBuild.executable("hang"))
        defer { fixture.stop() }
        _ = try #require(fixture.ask("deadlock"))
        let directory = try FormatsTests.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try swiftprof("watch", "\(fixture.pid)", "--until", "stall=1s", "-o", directory.path)
        #expect(result.status == 3, "\(result.stderr)")
        #expect(result.stderr.contains("swiftprof: stall: thread transfer (") || result.stderr.contains("swiftprof: stall: thread auditor ("),
                "\(result.stderr)")
        #expect(result.stderr.contains("has waited for a mutex for at least 1."), "\(result.stderr)")
    }

    /// A starved Swift pool is a deadlock too (Fixtures/SwiftAsync starve: every pool
    /// thread blocked in read(2) inside a job from the ready line on): the watch says
    /// the starvation line dump prints, once the pool has been seen starved a second,
    /// and the snapshot carries it.
    @Test func aStarvedSwiftPoolIsADeadlock() throws {
        let fixture = try Fixture(SwiftPoolTests.executable, arguments: ["starve"])
        defer { fixture.stop() }
        let width = try #require(fixture.readyNumber(after: "POOL"), "\(fixture.readyWords)")
        let directory = try FormatsTests.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let started = Self.now()
        let result = try swiftprof("watch", "\(fixture.pid)", "--until", "deadlock", "-o", directory.path)
        let took = (Self.now() - started) / 1e9
        #expect(result.status == 3, "\(result.stderr)")
        let line = try #require(result.stderr.split(separator: "\n").first { $0.hasPrefix("swiftprof: starvation: ") }, "\(result.stderr)")
        #expect(line.hasPrefix("swiftprof: starvation: \(width) of \(width) pool threads blocked outside an await: task 1 \"reloader\" in read(2) at "),
                "\(line)")
        #expect(line.hasSuffix("; 10 tasks wait for a thread"), "\(line)")
        // A second of starvation seen, looked at once a second, plus the start.
        #expect(took >= 1 && took < 4, "fired after \(took) s")
        let snapshot = try String(contentsOfFile: directory.path + "/snapshot.txt", encoding: .utf8)
        #expect(snapshot.contains("\n# starvation: \(width) of \(width) pool threads"), "\(snapshot)")
        fixture.expectRunning()
    }

    /// A process above a share of a core for 5 s: hot.c's burner spins all the time (a whole core).
    @Test func cpuAboveAShareFires() throws {
        let fixture = try Fixture.c("hot")
        defer { fixture.stop() }
        let directory = try FormatsTests.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try swiftprof("watch", "\(fixture.pid)", "--until", "cpu=60", "-o", directory.path)
        #expect(result.status == 3, "\(result.stderr)")
        let line = try #require(result.stderr.split(separator: "\n").first { $0.hasPrefix("swiftprof: cpu: the process used ") }, "\(result.stderr)")
        let percent = try #require(Double(line.split(separator: " ")[5]))
        #expect(percent >= 60 && percent <= 110, "\(line)")
        #expect(FileManager.default.fileExists(atPath: directory.path + "/window.pb.gz"))
        fixture.expectRunning()
    }

    /// The process's end ends the watch with nothing written (status 0); a bad condition is refused.
    @Test func theProcessEndingFirstIsNoHang() throws {
        let fixture = try Fixture(try FixtureBuild.executable("hang"))
        let directory = try FormatsTests.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let output = directory.appendingPathComponent("none").path
        let (watch, errors) = try Self.start(["\(fixture.pid)", "--until", "deadlock", "-o", output])
        _ = try #require(Fixture.readLine(errors))
        fixture.stop()
        var rest: [String] = []
        while let line = Fixture.readLine(errors) { rest.append(line) }
        watch.waitUntilExit()
        #expect(watch.terminationStatus == 0 && rest.contains("swiftprof: process \(fixture.pid) exited: nothing held"), "\(rest)")
        #expect((try? FileManager.default.contentsOfDirectory(atPath: output))?.isEmpty == true)
        #expect(try swiftprof("watch", "\(fixture.pid)", "--until", "often", "-o", output).status == 64)
        #expect(try swiftprof("watch", "\(fixture.pid)", "-o", output).status == 64)
    }
}
