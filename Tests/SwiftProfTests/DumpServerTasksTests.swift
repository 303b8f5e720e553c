// `dump --tasks` of a real Swift server: Fixtures/SwiftServer, a Hummingbird 2
// server that sends itself requests suspended in known functions, in known
// numbers (its source says which). The truth: those numbers, the fixture's source
// lines, and the thread the fixture itself says its running task is on.
import Foundation
import SwiftProf
import Testing

@Suite(.serialized) struct DumpServerTasksTests {
    static let source = "Fixtures/SwiftServer/Sources/SwiftServer/main.swift"

    private func server() throws -> (Fixture, auditorThread: Int32) {
        let fixture = try Fixture(try FixtureBuild.swiftServer())
        return (fixture, Int32(try #require(fixture.readyNumber(after: "AUDITOR_TID"), "\(fixture.readyWords)")))
    }

    private func records(_ profile: PprofTextProfile, _ function: String) -> [Record] {
        profile.records.filter { $0.functions.contains(function) }
    }

    @Test func everyRequestIsATaskWhereItWaits() throws {
        let (fixture, auditorThread) = try server()
        defer { fixture.stop() }
        let result = try swiftprof("dump", "--tasks", "\(fixture.pid)")
        #expect(result.status == 0, "\(result.stderr)")
        let profile = try parseProfile(result.stdout)

        // 5 requests asleep in nap(), at its await, each a child of the server's connection group.
        let naps = records(profile, "SwiftServer.nap() async")
        #expect(naps.map(\.count) == [5], "\(result.stdout)")
        #expect(naps.first?.functions.first == "static Task<>.sleep(nanoseconds:) async")
        #expect(naps.first?.frame("SwiftServer.nap() async")?.line
                == sourceLine(Self.source, containing: "func nap()") + 2)
        #expect(naps.first?.threadNames.allSatisfy { $0.hasPrefix("suspended in Task.sleep, task group child") } == true,
                "\(naps.first?.threadNames ?? [])")
        // The route closure and Hummingbird's responder under it, with their lines.
        #expect(naps.first?.functions.contains("Hummingbird.RouterResponder.respond(to:context:) async") == true)

        // 4 on a continuation nobody resumes.
        let waits = records(profile, "static SwiftServer.Events.waitForEvent() async")
        #expect(waits.map(\.count) == [4], "\(result.stdout)")
        #expect(waits.first?.threadNames.allSatisfy { $0.hasPrefix("suspended on a continuation") } == true)

        // 2 awaiting their task group, each with 3 children in fetchQuote(_:), linked to it.
        let gathers = records(profile, "SwiftServer.gatherQuotes() async").filter { !$0.functions.contains("SwiftServer.fetchQuote(_:) async") }
        #expect(gathers.map(\.count) == [2], "\(result.stdout)")
        #expect(gathers.first?.threadNames.allSatisfy { $0.hasPrefix("suspended on its task group") } == true)
        let quotes = records(profile, "SwiftServer.fetchQuote(_:) async")
        #expect(quotes.reduce(0) { $0 + $1.count } == 6, "\(result.stdout)")
        let gatherIDs = Set(gathers.flatMap(\.threadIDs))
        let parents = quotes.flatMap(\.threadNames).compactMap { state in
            state.split(separator: "task group child of task ").last?.split(separator: ",").first.flatMap { Int32($0) }
        }
        #expect(Set(parents) == gatherIDs && parents.count == 2, "\(quotes.flatMap(\.threadNames)) vs \(gatherIDs)")

        // 3 waiting for the actor Ledger, which the auditor holds: enqueued, at the await of the hop.
        let ledger = profile.records.filter { $0.threadNames.contains { $0.hasPrefix("enqueued") } }
        #expect(ledger.reduce(0) { $0 + $1.count } == 3, "\(result.stdout)")
        #expect(ledger.flatMap(\.threadNames).allSatisfy { $0.hasPrefix("enqueued on actor SwiftServer.Ledger, task group child") },
                "\(result.stdout)")
        #expect(ledger.first?.locations.first?.lines.first?.line == sourceLine(Self.source, containing: "await ledger.record(1)"),
                "\(result.stdout)")

        // The auditor is running, on the thread the fixture says it is on, under its name.
        let auditor = profile.records.filter { $0.threadNames.contains { $0.hasPrefix("\"auditor\" ") } }
        #expect(auditor.map(\.count) == [1], "\(result.stdout)")
        #expect(auditor.first?.threadNames == ["\"auditor\" running on thread \(auditorThread), priority medium"], "\(result.stdout)")
        #expect(records(profile, "SwiftServer.sweep() async").first?.threadNames == ["\"sweeper\" suspended in Task.sleep, priority medium"])
        fixture.expectRunning()
    }

    /// The thread view marks the pool thread running the auditor with its task id:
    /// the same id `dump --tasks` gives the auditor.
    @Test func theThreadViewSaysWhichTaskAThreadRuns() throws {
        let (fixture, auditorThread) = try server()
        defer { fixture.stop() }
        let tasks = try parseProfile(try swiftprof("dump", "--tasks", "\(fixture.pid)").stdout)
        let auditorTask = try #require(tasks.records.first { $0.threadNames.contains { $0.hasPrefix("\"auditor\" ") } }?.threadIDs.first)

        let threads = try swiftprof("dump", "\(fixture.pid)")
        #expect(threads.status == 0, "\(threads.stderr)")
        let profile = try parseProfile(threads.stdout)
        let marked = profile.records.filter { $0.state?.swiftTasks.isEmpty == false }
        #expect(marked.map(\.threadIDs) == [[auditorThread]], "\(threads.stdout)")
        #expect(marked.first?.state?.swiftTasks == [UInt64(auditorTask)])
        #expect(marked.first?.functions.contains("SwiftServer.Ledger.audit()") == true, "\(threads.stdout)")

        let traceback = try swiftprof("dump", "--format", "traceback", "\(fixture.pid)")
        #expect(traceback.stdout.contains("thread \(auditorThread) \""), "\(traceback.stdout)")
        #expect(traceback.stdout.split(separator: "\n").contains { $0.hasPrefix("thread \(auditorThread) ") && $0.hasSuffix(", running task \(auditorTask)]:") },
                "\(traceback.stdout)")
        // The text reads back with the mark.
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("swiftprof-server-\(UUID().uuidString).txt").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        try threads.stdout.write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try swiftprof("dump", "--input", file).stdout == threads.stdout)
    }

    @Test func tracebackHeadsNamedTasksWithTheirNames() throws {
        let (fixture, auditorThread) = try server()
        defer { fixture.stop() }
        let result = try swiftprof("dump", "--tasks", "--format", "traceback", "\(fixture.pid)")
        #expect(result.status == 0, "\(result.stderr)")
        let headers = result.stdout.split(separator: "\n").filter { $0.hasPrefix("task ") }
        #expect(headers.filter { $0.hasSuffix(" \"auditor\" [running on thread \(auditorThread), priority medium]:") }.count == 1, "\(headers)")
        #expect(headers.filter { $0.hasSuffix(" \"sweeper\" [suspended in Task.sleep, priority medium]:") }.count == 1, "\(headers)")
    }

    /// CPU samples of a request handler's work reach the route that called it, through
    /// Hummingbird's responder (async callers), and carry the request's task. A request
    /// here lasts about a millisecond: a sample whose task has ended or moved on by the
    /// time it is read says so instead of naming a caller.
    @Test func requestSamplesReachTheRouteHandler() throws {
        let (fixture, auditorThread) = try server()
        defer { fixture.stop() }
        #expect(fixture.ask("load") == "loading")
        let result = try swiftprof("attach", "--mode", "cpu", "--duration", "2s", "\(fixture.pid)")
        #expect(result.status == 0, "\(result.stderr)")
        let profile = try parseProfile(result.stdout)
        let work = profile.records.filter { $0.functions.contains("SwiftServer.crunch(_:)") }
        try #require(!work.isEmpty, "\(result.stdout)")
        var reached = 0
        for record in work {
            let callers = Array(record.functions.drop { $0 != "SwiftServer.crunch(_:)" }.dropFirst())
            #expect(callers.first == "SwiftServer.handlePrice() async", "\(record.functions)")
            if callers.contains("Hummingbird.CallbackResponder.respond(to:context:) async") {
                // The route's closure, then the router that chose it.
                #expect(callers.dropFirst().first?.hasSuffix(" in SwiftServer async") == true, "\(callers)")
                #expect(callers.contains("Hummingbird.RouterResponder.respond(to:context:) async"), "\(callers)")
                #expect(record.labels["task_id"] != nil, "\(record.labels)")
                reached += record.count
            } else {
                #expect(record.truncation?.contains("async callers not read") == true, "\(record.functions)")
            }
        }
        #expect(reached > 0, "\(result.stdout)")
        _ = auditorThread
    }
}
