// Go's block profile of a native program, checked against the program's own clock:
// Fixtures/c/contend.c's three waiters measure how long each pthread_mutex_lock
// took while a holder computes 20 ms at a time under the lock. The profile's delay
// is a count of wall-clock ticks at which a waiter was seen waiting, times the
// period: over a second it must come to the waiters' own measured waiting per
// second within 25 %. At 100 Hz over 3 s, about 780 waiting ticks: the count's
// standard deviation is under 1 % of it; the rest of the 25 % is for the moments a
// waiter is in pthread_mutex_lock without being blocked in the kernel yet.
import Foundation
import Testing

@Suite(.serialized) struct BlockProfileTests {
    /// The waiters' measured waiting, their waits and the fixture's clock (ns).
    private static func report(_ fixture: Fixture) throws -> (waited: Double, waits: Double, at: Double) {
        let words = try #require(fixture.ask("report")).split(separator: " ")
        try #require(words.count == 6, "\(words)")
        return (try #require(Double(words[1])), try #require(Double(words[3])), try #require(Double(words[5])))
    }

    /// `go tool pprof -top -sample_index=INDEX`'s total ("Total samples = 7.74s" or "= 426").
    private static func total(_ file: String, index: String) throws -> (total: String, output: String) {
        let top = try run("go", ["tool", "pprof", "-top", "-sample_index=\(index)", file], environment: FormatsTests.goEnvironment)
        let line = try #require(top.stdout.split(separator: "\n").first { $0.contains("Total samples = ") }, "\(top.stdout)\(top.stderr)")
        return (String(line.split(separator: "=").last!.split(separator: " ").first ?? ""), top.stdout)
    }

    private static func seconds(_ text: String) -> Double? {
        if text.hasSuffix("ms") { return Double(text.dropLast(2)).map { $0 / 1000 } }
        if text.hasSuffix("s") { return Double(text.dropLast()) }
        return nil
    }

    @Test func attachDelayIsTheWaitersOwnWaiting() throws {
        let fixture = try Fixture(try FixtureBuild.executable("contend"))
        defer { fixture.stop() }
        let directory = try FormatsTests.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("block.pb.gz").path
        let before = try Self.report(fixture)
        let result = try swiftprof("attach", "\(fixture.pid)", "--profile", "block", "--duration", "3s", "--format", "pprof", "-o", file)
        let after = try Self.report(fixture)
        #expect(result.status == 0, "\(result.stderr)")
        let truthPerSecond = (after.waited - before.waited) / (after.at - before.at)
        let (delay, top) = try Self.total(file, index: "delay")
        #expect(top.contains("Type: delay") && top.contains("Duration: 3"), "\(top)")
        let duration = 3.0
        let sampledPerSecond = try #require(Self.seconds(delay)) / duration
        #expect(abs(sampledPerSecond / truthPerSecond - 1) <= 0.25, "profile \(sampledPerSecond) s/s, fixture \(truthPerSecond) s/s\n\(top)")
        // Under the waiter's own stack, the wait named.
        #expect(top.contains("waiter_lock"), "\(top)")
        let tags = try run("go", ["tool", "pprof", "-tags", file], environment: FormatsTests.goEnvironment).stdout
        #expect(tags.contains(" wait: Total") && tags.contains("(  100%): mutex"), "\(tags)")
        // Contentions: waits seen at a tick, never more than the waits there were.
        let (contentions, _) = try Self.total(file, index: "contentions")
        let counted = try #require(Double(contentions))
        let waitsPerSecond = (after.waits - before.waits) / (after.at - before.at) * 1e9
        #expect(counted > 0 && counted / duration <= waitsPerSecond * 1.1, "\(counted) contentions in 3 s, the fixture's \(waitsPerSecond)/s")
        fixture.expectRunning()
        #expect(try swiftprof("attach", "\(fixture.pid)", "--profile", "block", "--mode", "cpu").status == 64)
    }

    /// The mutex profile charges the same waiting to the holder: contend.c's holder
    /// computes in holder_compute for all but a millisecond of each 21 ms it holds the
    /// lock, so nearly all the delay is under holder_compute, none under waiter_lock.
    /// A read-write lock's writer is read from the lock as a mutex's owner is; a flock
    /// is held by a process (the kernel records no thread): the delay is charged to a
    /// frame that names the file and the fixture's process.
    @Test(arguments: ["mutex", "rwlock", "flock"]) func attachMutexChargesTheHolder(_ lock: String) throws {
        let fixture = try Fixture(try FixtureBuild.executable("contend"), arguments: [lock])
        defer { fixture.stop() }
        let directory = try FormatsTests.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("mutex.pb.gz").path
        let before = try Self.report(fixture)
        let result = try swiftprof("attach", "\(fixture.pid)", "--profile", "mutex", "--duration", "3s", "--format", "pprof", "-o", file)
        let after = try Self.report(fixture)
        #expect(result.status == 0, "\(result.stderr)")
        let truthPerSecond = (after.waited - before.waited) / (after.at - before.at)
        let (delay, top) = try Self.total(file, index: "delay")
        let total = try #require(Self.seconds(delay))
        #expect(abs(total / 3 / truthPerSecond - 1) <= 0.25, "profile \(total / 3) s/s, fixture \(truthPerSecond) s/s\n\(top)")
        let holder = lock == "flock" ? "flock on /tmp/contend-\(fixture.pid).lock held by contend \\(process \(fixture.pid)\\)" : "holder_compute"
        let compute = try run("go", ["tool", "pprof", "-top", "-sample_index=delay", "-focus", holder, file],
                              environment: FormatsTests.goEnvironment)
        let held = try #require(compute.stdout.split(separator: "\n").first { $0.contains("Showing nodes accounting for") }
            .flatMap { $0.split(separator: " ").dropFirst(4).first }.flatMap { Self.seconds(String($0.filter { $0 != "," })) }, "\(compute.stdout)")
        #expect(held / total >= 0.8, "\(held) s of \(total) s under \(holder)\n\(top)")
        #expect(!top.contains("waiter_lock"), "\(top)")
        let tags = try run("go", ["tool", "pprof", "-tags", file], environment: FormatsTests.goEnvironment).stdout
        let kind = ["mutex": "mutex", "rwlock": "rwlock", "flock": "file lock"][lock]!
        #expect(tags.contains("(  100%): \(kind) held"), "\(tags)")
        fixture.expectRunning()
    }

    /// serve's /debug/pprof/block?seconds=N is the same profile, read by go tool pprof.
    @Test func serveAnswersBlock() throws {
        let fixture = try Fixture(try FixtureBuild.executable("contend"))
        defer { fixture.stop() }
        let server = try ServeProcess(pid: fixture.pid)
        defer { server.end() }
        let before = try Self.report(fixture)
        let (delay, top) = try Self.total(server.url("block?seconds=2"), index: "delay")
        let after = try Self.report(fixture)
        let truthPerSecond = (after.waited - before.waited) / (after.at - before.at)
        let sampledPerSecond = try #require(Self.seconds(delay)) / 2
        #expect(top.contains("Type: delay") && top.contains("waiter_lock"), "\(top)")
        #expect(abs(sampledPerSecond / truthPerSecond - 1) <= 0.25, "profile \(sampledPerSecond) s/s, fixture \(truthPerSecond) s/s\n\(top)")
        let (_, mutex) = try Self.total(server.url("mutex?seconds=1"), index: "delay")
        #expect(mutex.contains("Type: delay") && mutex.contains("holder_compute"), "\(mutex)")
        fixture.expectRunning()
    }
}
