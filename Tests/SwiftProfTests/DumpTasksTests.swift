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
        try #require(fixture.readyNumber(after: "TASK_TOTAL"), "\(fixture.readyWords)")
    }

    private func record(_ profile: PprofTextProfile, _ functions: [String]) -> [Record] {
        profile.records.filter { record in functions.allSatisfy(record.functions.contains) }
    }

    /// Without a stop (the default) and with every thread stopped (--consistent): the same tasks.
    @Test(arguments: [[], ["--consistent"]])
    func everyTaskIsListedWithItsAsyncBacktrace(_ options: [String]) throws {
        let fixture = try Fixture(Self.executable)
        defer { fixture.stop() }
        let result = try swiftprof(["dump", "--tasks"] + options + ["\(fixture.pid)"])
        #expect(result.status == 0, "\(result.stderr)")
        let profile = try parseProfile(result.stdout)
        #expect(profile.profileName == "task")
        #expect(result.stdout.hasPrefix("task profile: total \(try total(fixture))\n"))
        #expect(profile.records.reduce(0) { $0 + $1.count } == (try total(fixture)), "\(result.stdout)")

        // Innermost first: what each awaits, then the fixture's function at its await line.
        let waiting = record(profile, ["SwiftTasks.Cache.waitForever(key:) async"])
        #expect(waiting.map(\.count) == [3], "\(result.stdout)")
        // Each record says which tasks and in what state: the ids are the runtime's, 1 to 3 first.
        #expect(waiting.first?.threadIDs.count == 3)
        #expect(waiting.first?.threadNames == ["suspended on a continuation, priority medium"])
        #expect(waiting.first?.functions.first == "Swift.withCheckedContinuation<A>(isolation:function:_:) async")
        #expect(waiting.first?.frame("SwiftTasks.Cache.waitForever(key:) async")?.line
                == sourceLine(Self.source, containing: "await withCheckedContinuation { parking.keep($0) }"))
        #expect(record(profile, ["SwiftTasks.slowLookup(_:) async"]).map(\.count) == [2])
        // Started at background priority, the others at the default (medium).
        #expect(record(profile, ["SwiftTasks.slowLookup(_:) async"]).first?.threadNames == ["suspended in Task.sleep, priority background"])
        let groupChildren = record(profile, ["SwiftTasks.childWork(_:) async", "closure #1 in closure #1 in SwiftTasks.fanOut(_:) async"])
        #expect(groupChildren.map(\.count) == [4], "\(result.stdout)")
        #expect(groupChildren.first?.frame("SwiftTasks.childWork(_:) async")?.line
                == sourceLine(Self.source, containing: "func childWork") + 1)
        #expect(record(profile, ["TaskGroup.next(isolation:) async", "SwiftTasks.fanOut(_:) async"]).map(\.count) == [1])
        #expect(record(profile, ["SwiftTasks.pairUp() async"]).filter { !$0.functions.contains("SwiftTasks.childWork(_:) async") }
                    .map(\.count) == [1])
        let asyncLets = record(profile, ["SwiftTasks.childWork(_:) async"]).filter { $0.functions.contains { $0.hasPrefix("implicit closure") } }
        #expect(asyncLets.map(\.count) == [1, 1], "\(result.stdout)")
        // Names (Task(name:)) lead their task's state, quoted; the record's line reads them back.
        let janitors = record(profile, ["SwiftTasks.janitor() async"])
        #expect(janitors.map(\.count) == [2], "\(result.stdout)")
        #expect(janitors.first?.threadNames == [#""janitor" suspended on a continuation, priority medium"#,
                                                #""x\n1 @ 0x1\n#\t0" suspended on a continuation, priority medium"#], "\(result.stdout)")
        // A task awaiting another's value names it: the runtime's dependency record says which.
        let worker = try #require(record(profile, ["SwiftTasks.parkedWorker() async"]).first?.threadIDs.first, "\(result.stdout)")
        #expect(record(profile, ["SwiftTasks.supervise(_:) async"]).first?.threadNames == ["suspended awaiting task \(worker), priority medium"],
                "\(result.stdout)")
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
        // What each waits on, where the runtime's own function says it.
        #expect(headers.filter { $0.contains("[suspended on a continuation, priority medium]") }.count == 3 + 2 + 1, "\(headers)")
        // supervise(_:) awaiting its worker, pairUp() awaiting its first async let.
        #expect(headers.filter { $0.contains("[suspended awaiting task ") }.count == 2, "\(headers)")
        // A named task is headed with its name, quoted as thread names are: a newline
        // in it cannot start a line of its own.
        #expect(headers.filter { $0.contains(" \"janitor\" [suspended on a continuation, priority medium]:") }.count == 1, "\(headers)")
        #expect(headers.filter { $0.contains(#" "x\n1 @ 0x1\n#\t0" [suspended on a continuation, priority medium]:"#) }.count == 1,
                "\(headers)")
        #expect(!result.stdout.split(separator: "\n").contains { $0.hasPrefix("1 @") || $0 == "#" }, "\(result.stdout)")
        #expect(headers.filter { $0.contains("[suspended in Task.sleep") }.count == 2 + 4 + 2, "\(headers)")
        #expect(headers.filter { $0.contains("[suspended on its task group, priority medium]") }.count == 1, "\(headers)")
        #expect(headers.filter { $0.hasSuffix(", priority background]:") }.count == 2, "\(headers)")
        #expect(headers.filter { $0.contains("task group child") }.count == 4, "\(headers)")
        let asyncLets = headers.filter { $0.contains("async let") }
        #expect(asyncLets.count == 2, "\(headers)")
        // Both name their parent, the task in pairUp(), which awaits the first of them.
        let parents = Set(asyncLets.compactMap { $0.split(separator: "async let of task ").last?.split(separator: ",").first })
        #expect(parents.count == 1, "\(asyncLets)")
        let pairUp = try #require(headers.first { $0.hasPrefix("task \(parents.first ?? "?") [") }, "\(headers)")
        let awaited = try #require(pairUp.split(separator: "awaiting task ").last?.split(separator: ",").first, "\(pairUp)")
        #expect(asyncLets.contains { $0.hasPrefix("task \(awaited) [") }, "\(pairUp) \(asyncLets)")
    }

    /// The record lines (`# tasks: IDS states: ...`) read back: --input gives the same bytes.
    @Test func theTextReadsBackToTheSameBytes() throws {
        let fixture = try Fixture(Self.executable)
        defer { fixture.stop() }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftprof-tasks-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for options in [[], ["--addresses", "relative"]] {
            let file = directory.appendingPathComponent("tasks.txt").path
            let result = try swiftprof(["dump", "--tasks", "-o", file] + options + ["\(fixture.pid)"])
            #expect(result.status == 0, "\(result.stderr)")
            let text = try String(contentsOfFile: file, encoding: .utf8)
            #expect(text.contains("\n# tasks: "), "\(text)")
            let again = try swiftprof(["dump", "--input", file] + options)
            #expect(again.status == 0, "\(again.stderr)")
            #expect(again.stdout == text)
        }
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

    /// With --consistent the process is held stopped for at most --stop-timeout of
    /// reading: 20,000 tasks do not fit in 1 ms, the rest is said unread (exit status 1).
    @Test func theStopTimeoutBoundsAConsistentRead() throws {
        let fixture = try Fixture(Self.executable, arguments: ["20000"])
        defer { fixture.stop() }
        let result = try swiftprof("dump", "--tasks", "--consistent", "--stop-timeout", "1", "\(fixture.pid)")
        #expect(result.status == 1, "\(result.stderr)")
        let read = try parseProfile(result.stdout).records.reduce(0) { $0 + $1.count }
        let all = try total(fixture)
        #expect(read > 0 && read < all, "\(read) of \(all)")
        #expect(result.stderr.contains("were not read: the process was let go after --stop-timeout (1 ms)"), "\(result.stderr)")
        fixture.expectRunning()
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
