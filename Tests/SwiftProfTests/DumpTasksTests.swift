// `dump --tasks` against Fixtures/SwiftTasks, whose tasks are suspended in known
// functions in known numbers: the fixture's own count (TASK_TOTAL on its ready
// line) and its source are the truth, record by record.
import Foundation
import SwiftProf
import Testing

@Suite(.serialized) struct DumpTasksTests {
    static var executable: String { Paths.products.appendingPathComponent("SwiftTasks").path }
    static let source = "Fixtures/SwiftTasks/main.swift"

    /// The fixture's own count of its live tasks.
    private func total(_ fixture: Fixture) throws -> Int {
        let words = fixture.readyWords
        let index = try #require(words.firstIndex(of: "TASK_TOTAL"), "\(words)")
        return try #require(Int(words[index + 1]))
    }

    private func record(_ profile: PprofTextProfile, _ functions: [String]) -> [Record] {
        profile.records.filter { record in functions.allSatisfy(record.functions.contains) }
    }

    @Test func everyTaskIsListedWithItsAsyncBacktrace() throws {
        let fixture = try Fixture(Self.executable)
        defer { fixture.stop() }
        let result = try swiftprof("dump", "--tasks", "\(fixture.pid)")
        #expect(result.status == 0, "\(result.stderr)")
        let profile = try parseProfile(result.stdout)
        #expect(profile.profileName == "task")
        #expect(result.stdout.hasPrefix("task profile: total \(try total(fixture))\n"))
        #expect(profile.records.reduce(0) { $0 + $1.count } == (try total(fixture)), "\(result.stdout)")

        // Innermost first: what each awaits, then the fixture's function at its await line.
        let waiting = record(profile, ["SwiftTasks.Cache.waitForever(key:) async"])
        #expect(waiting.map(\.count) == [3], "\(result.stdout)")
        #expect(waiting.first?.functions.first == "Swift.withCheckedContinuation<A>(isolation:function:_:) async")
        #expect(waiting.first?.frame("SwiftTasks.Cache.waitForever(key:) async")?.line
                == sourceLine(Self.source, containing: "await withCheckedContinuation { parking.keep($0) }"))
        #expect(record(profile, ["SwiftTasks.slowLookup(_:) async"]).map(\.count) == [2])
        let groupChildren = record(profile, ["SwiftTasks.childWork(_:) async", "closure #1 in closure #1 in SwiftTasks.fanOut(_:) async"])
        #expect(groupChildren.map(\.count) == [4], "\(result.stdout)")
        #expect(groupChildren.first?.frame("SwiftTasks.childWork(_:) async")?.line
                == sourceLine(Self.source, containing: "func childWork") + 1)
        #expect(record(profile, ["TaskGroup.next(isolation:) async", "SwiftTasks.fanOut(_:) async"]).map(\.count) == [1])
        #expect(record(profile, ["SwiftTasks.pairUp() async"]).filter { !$0.functions.contains("SwiftTasks.childWork(_:) async") }
                    .map(\.count) == [1])
        let asyncLets = record(profile, ["SwiftTasks.childWork(_:) async"]).filter { $0.functions.contains { $0.hasPrefix("implicit closure") } }
        #expect(asyncLets.map(\.count) == [1, 1], "\(result.stdout)")
        // Thunks and the runtime's task completion are left out of the backtraces.
        #expect(!result.stdout.contains("thunk") && !result.stdout.contains("completeTask"), "\(result.stdout)")
        // Read without a stop.
        fixture.expectRunning()
    }

    @Test func tracebackHeadsEachTaskWithItsState() throws {
        let fixture = try Fixture(Self.executable)
        defer { fixture.stop() }
        let result = try swiftprof("dump", "--tasks", "--format", "traceback", "\(fixture.pid)")
        #expect(result.status == 0, "\(result.stderr)")
        let headers = result.stdout.split(separator: "\n").filter { $0.hasPrefix("task ") }
        #expect(headers.count == (try total(fixture)), "\(result.stdout)")
        #expect(headers.allSatisfy { $0.hasSuffix("]:") && $0.contains("[suspended") }, "\(headers)")
        #expect(headers.filter { $0.contains("task group child") }.count == 4, "\(headers)")
        let asyncLets = headers.filter { $0.contains("async let") }
        #expect(asyncLets.count == 2, "\(headers)")
        // Both name their parent, the task in pairUp().
        let parents = Set(asyncLets.compactMap { $0.split(separator: "of task ").last?.dropLast(2) })
        #expect(parents.count == 1, "\(asyncLets)")
    }

    /// The count stays exact at 10,000 more tasks.
    @Test func tenThousandTasksAreCountedExactly() throws {
        let fixture = try Fixture(Self.executable, arguments: ["10000"])
        defer { fixture.stop() }
        let result = try swiftprof("dump", "--tasks", "\(fixture.pid)")
        #expect(result.status == 0, "\(result.stderr)")
        let profile = try parseProfile(result.stdout)
        #expect(profile.records.reduce(0) { $0 + $1.count } == (try total(fixture)))
        #expect(record(profile, ["SwiftTasks.parkedMany(_:) async"]).map(\.count) == [10000])
    }

    @Test func aProgramWithoutSwiftConcurrencyIsRefused() throws {
        let fixture = try Fixture.c("parked")
        defer { fixture.stop() }
        let result = try swiftprof("dump", "--tasks", "\(fixture.pid)")
        #expect(result.status == 2)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr == "swiftprof: cannot list the Swift tasks of process \(fixture.pid): "
                + "it has no Swift concurrency runtime (libswift_Concurrency.so)\n")
        fixture.expectRunning()
    }
}
