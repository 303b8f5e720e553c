// A starved cooperative pool and a held actor (Fixtures/SwiftAsync starve): every
// pool thread blocked in read(2) inside a job, one of them holding the actor
// Registry with 3 tasks queued on it, and 10 tasks made once no thread was left.
// The truth: the fixture's source and counts, and its own clock for how long.
import Foundation
import SwiftProf
import Testing

@Suite(.serialized) struct SwiftPoolTests {
    static var executable: String { Paths.products.appendingPathComponent("SwiftAsync").path }
    static let source = "Fixtures/SwiftAsync/main.swift"

    private func pool(_ fixture: Fixture) throws -> Int {
        try #require(fixture.readyNumber(after: "POOL"), "\(fixture.readyWords)")
    }

    /// What the starvation line must say: the reloader (task 1) and the loaders (tasks
    /// 5 on, after the 3 queued on the actor), each at its read(2).
    private func expectedStarvation(pool: Int) -> String {
        let reload = "SwiftAsync.Registry.reload(_:) (main.swift:\(sourceLine(Self.source, containing: "func reload(_ path: String)") + 3))"
        let load = "SwiftAsync.loadConfig(_:) (main.swift:\(sourceLine(Self.source, containing: "func loadConfig(_ path: String) async") + 2))"
        let jobs = ["task 1 \"reloader\" in read(2) at \(reload)"]
            + (1..<pool).map { "task \(4 + $0) \"loader \($0)\" in read(2) at \(load)" }
        return "# starvation: \(pool) of \(pool) pool threads blocked outside an await: " + jobs.joined(separator: ", ")
            + "; 10 tasks wait for a thread"
    }

    @Test func aStarvedPoolAndAHeldActorAreNamed() throws {
        let fixture = try Fixture(Self.executable, arguments: ["starve"])
        defer { fixture.stop() }
        let width = try pool(fixture)
        let tasks = try swiftprof("dump", "--tasks", "\(fixture.pid)")
        #expect(tasks.status == 0, "\(tasks.stderr)")
        let lines = tasks.stdout.split(separator: "\n").map(String.init)
        #expect(lines.dropFirst().first == expectedStarvation(pool: width), "\(tasks.stdout)")
        let actor = try #require(lines.first { $0.hasPrefix("# actor: ") }, "\(tasks.stdout)")
        // The thread view: the same lines, and the actor's holder is the thread whose
        // samples carry the reloader's task.
        let threads = try swiftprof("dump", "\(fixture.pid)")
        #expect(threads.status == 0, "\(threads.stderr)")
        let threadLines = threads.stdout.split(separator: "\n").map(String.init)
        #expect(threadLines.dropFirst().first == expectedStarvation(pool: width), "\(threads.stdout)")
        #expect(threadLines.contains(actor), "\(threads.stdout)")
        let reloader = try #require(try parseProfile(threads.stdout).records.first { $0.labels["task_name"] == "reloader" }?.threadIDs.first,
                                    "\(threads.stdout)")
        #expect(actor == "# actor: SwiftAsync.Registry held by task 1 \"reloader\" (thread \(reloader), blocked in read(2)), "
                + "3 tasks queued: 2, 3, 4")
        // The traceback heads with them too, as with deadlocks.
        let traceback = try swiftprof("dump", "--format", "traceback", "\(fixture.pid)")
        #expect(traceback.stdout.hasPrefix(String(expectedStarvation(pool: width).dropFirst(2)) + "\n"), "\(traceback.stdout)")
        fixture.expectRunning()
    }

    /// How long, by the test's own clock: every thread blocked since the fixture got
    /// ready (at least the time since its ready line, at most since it started).
    @Test func blockedTimesAreTheFixturesOwn() throws {
        let started = monotonic()
        let fixture = try Fixture(Self.executable, arguments: ["starve"])
        defer { fixture.stop() }
        let ready = monotonic()
        let asked = monotonic()
        let result = try swiftprof("dump", "--blocked-time", "--no-kernel", "\(fixture.pid)")
        let answered = monotonic()
        #expect(result.status == 0, "\(result.stderr)")
        let profile = try parseProfile(result.stdout)
        let blocked = profile.records.filter { $0.labels["task_name"] != nil }.compactMap { $0.state?.blockedNanoseconds }
        try #require(blocked.count == (try pool(fixture)), "\(result.stdout)")
        // 10 ms of slack: when a thread last ran is known to a scheduler tick (4 ms at
        // HZ=250), as is the clock it is read against; the errors this catches were a
        // second (the ns fraction read as us) and a minute (CLOCK_MONOTONIC assumed).
        for time in blocked {
            #expect(Double(time) / 1e9 >= asked - ready - 0.010 && Double(time) / 1e9 <= answered - started + 0.010,
                    "blocked \(Double(time) / 1e9) s; ready \(asked - ready) s before, started \(answered - started) s before")
        }
        let line = try #require(result.stdout.split(separator: "\n").first { $0.hasPrefix("# starvation: ") })
        #expect(line.contains(" in read(2) for "), "\(line)")
    }

    /// --fail-on-deadlock: exit 3 once the pool has been starved a second, by the
    /// kernel's blocked times; never before the fixture is a second old.
    @Test func failOnDeadlockWaitsForASecondOfStarvation() throws {
        let started = monotonic()
        let fixture = try Fixture(Self.executable, arguments: ["starve"])
        defer { fixture.stop() }
        var exits: [(status: Int32, at: Double, stderr: String)] = []
        while exits.last?.status != 3, monotonic() - started < 20 {
            let result = try swiftprof("dump", "--fail-on-deadlock", "\(fixture.pid)")
            exits.append((result.status, monotonic() - started, result.stderr))
        }
        let failed = try #require(exits.last, "no dump ran")
        #expect(failed.status == 3, "\(exits.map(\.status))")
        #expect(failed.at >= 1, "exit 3 at \(failed.at) s after the start")
        #expect(failed.stderr.hasPrefix("swiftprof: starvation: "), "\(failed.stderr)")
        #expect(exits.dropLast().allSatisfy { $0.status == 0 }, "\(exits.map(\.status))")
        fixture.expectRunning()
    }

    private func monotonic() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}
