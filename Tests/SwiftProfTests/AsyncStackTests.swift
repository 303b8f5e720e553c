// A Swift job's stack continues with its task's async callers (Fixtures/SwiftAsync
// requests): two request kinds await one shared helper, which suspends once and
// then calls a synchronous hot function. The fixture measures, by each thread's own
// CPU clock, how long each kind spends in that function: the sampled split must
// match it, and the hot function's samples must reach the handlers.
import Foundation
import SwiftProf
import Testing

@Suite(.serialized) struct AsyncStackTests {
    static var executable: String { Paths.products.appendingPathComponent("SwiftAsync").path }
    static let source = "Fixtures/SwiftAsync/main.swift"

    /// The CPU time each kind has spent in hot(_:) so far, by the fixture's own clock.
    private func cpu(_ fixture: Fixture) throws -> (search: Int, index: Int) {
        let answer = try #require(fixture.ask("cpu"))
        let words = answer.split(separator: " ").compactMap { Int($0) }
        try #require(words.count == 2, "\(answer)")
        return (words[0], words[1])
    }

    @Test func sampledSplitMatchesTheFixturesOwnClock() throws {
        let fixture = try Fixture(Self.executable, arguments: ["requests"])
        defer { fixture.stop() }
        let before = try cpu(fixture)
        let result = try swiftprof("attach", "--mode", "cpu", "--rate", "199", "--duration", "6s", "--format", "folded", "\(fixture.pid)")
        let after = try cpu(fixture)
        #expect(result.status == 0, "\(result.stderr)")
        var search = 0, index = 0, neither = 0
        for line in result.stdout.split(separator: "\n") {
            guard let space = line.lastIndex(of: " "), let count = Int(line[line.index(after: space)...]) else { continue }
            let frames = line[..<space].split(separator: ";")
            guard frames.last?.hasPrefix("SwiftAsync.hot(") == true || frames.dropLast().last?.hasPrefix("SwiftAsync.hot(") == true
            else { continue }
            if frames.contains(where: { $0.hasPrefix("SwiftAsync.handleSearch()") }) {
                search += count
            } else if frames.contains(where: { $0.hasPrefix("SwiftAsync.handleIndex()") }) {
                index += count
            } else {
                neither += count
            }
        }
        let hot = search + index + neither
        // About 2,000 samples of hot(_:) in 6 s on two busy threads; at 800 a binomial
        // share's standard deviation is 0.017, and 0.05 is three of them.
        try #require(hot >= 800, "\(result.stdout)")
        #expect(Double(search + index) / Double(hot) >= 0.9, "\(neither) of \(hot) samples of hot(_:) reach no handler")
        let measured = Double(after.search - before.search) / Double(after.search - before.search + after.index - before.index)
        let sampled = Double(search) / Double(search + index)
        #expect(abs(sampled - measured) <= 0.05, "sampled \(sampled), measured \(measured)")
    }

    /// dump's thread view: the helper where the thread is (in hot(_:) or its own clock
    /// reads), the handler at its await, the task's closure, then the executor's frames.
    @Test func aThreadRunningAJobShowsItsAsyncCallers() throws {
        let fixture = try Fixture(Self.executable, arguments: ["requests"])
        defer { fixture.stop() }
        // A thread may be between two jobs at the instant of a dump: a few dumps, until one
        // finds a job running.
        var running: [Record] = []
        var text = ""
        for _ in 0..<5 where running.isEmpty {
            let result = try swiftprof("dump", "\(fixture.pid)")
            #expect(result.status == 0, "\(result.stderr)")
            text = result.stdout
            running = try parseProfile(text).records.filter { $0.functions.contains("SwiftAsync.sharedLookup(_:kind:) async") }
        }
        try #require(!running.isEmpty, "\(text)")
        for record in running {
            let functions = record.functions.drop { $0 != "SwiftAsync.sharedLookup(_:kind:) async" }
            let handler = try #require(functions.dropFirst().first, "\(text)")
            #expect(handler == "SwiftAsync.handleSearch() async" || handler == "SwiftAsync.handleIndex() async", "\(text)")
            #expect(Array(functions.dropFirst(2).prefix(1)) == ["closure #1 in SwiftAsync.requests() async"], "\(text)")
            // The handler's frame is the line of its await, from the fixture's source.
            let marker = handler.hasPrefix("SwiftAsync.handleSearch") ? "func handleSearch()" : "func handleIndex()"
            #expect(record.frame(handler)?.line == sourceLine(Self.source, containing: marker), "\(text)")
            // Then the executor that ran the job, and no task completion.
            #expect(functions.contains("swift_job_run"), "\(text)")
            #expect(!functions.contains { $0.hasPrefix("completeTask") }, "\(text)")
            #expect(record.labels["task_name"]?.hasPrefix("server ") == true, "\(record.labels)")
        }
    }

    /// traceback marks the callers read from the task's async contexts `[async]`, as
    /// Swift's backtracer does; the frames on the thread's own stack stay unmarked.
    @Test func tracebackMarksTheAsyncCallers() throws {
        let fixture = try Fixture(Self.executable, arguments: ["requests"])
        defer { fixture.stop() }
        let helper = "SwiftAsync.sharedLookup(_:kind:) async(...)"
        var blocks: [[Substring]] = []
        var text = ""
        for _ in 0..<5 where blocks.isEmpty {
            let result = try swiftprof("dump", "--format", "traceback", "\(fixture.pid)")
            #expect(result.status == 0, "\(result.stderr)")
            text = result.stdout
            blocks = text.split(separator: "\n\n").map { $0.split(separator: "\n").filter { !$0.hasPrefix("\t") } }
                .filter { $0.contains(Substring(helper)) }
        }
        try #require(!blocks.isEmpty, "\(text)")
        for functions in blocks {
            let at = try #require(functions.firstIndex(of: Substring(helper)))
            // Where the thread is, on its stack: unmarked.
            #expect(functions[..<at].allSatisfy { !$0.hasSuffix(" [async]") }, "\(text)")
            #expect(["SwiftAsync.handleSearch() async(...) [async]", "SwiftAsync.handleIndex() async(...) [async]"]
                .contains(functions[at + 1]), "\(text)")
            #expect(functions[at + 2] == "closure #1 in SwiftAsync.requests() async(...) [async]", "\(text)")
            // The executor below is on the thread's stack again.
            #expect(functions[(at + 3)...].allSatisfy { !$0.hasSuffix(" [async]") }, "\(text)")
            #expect(functions[(at + 3)...].contains("swift_job_run(...)"), "\(text)")
        }
    }

    /// dump --tasks: a running task's record is its thread's stack, from where the
    /// thread is up to the task's entry, without the executor's frames below.
    @Test func aRunningTasksRecordStartsWhereItsThreadIs() throws {
        let fixture = try Fixture(Self.executable, arguments: ["requests"])
        defer { fixture.stop() }
        let result = try swiftprof("dump", "--tasks", "--consistent", "\(fixture.pid)")
        #expect(result.status == 0, "\(result.stderr)")
        let profile = try parseProfile(result.stdout)
        #expect(profile.records.reduce(0) { $0 + $1.count } == 2, "\(result.stdout)")
        let running = profile.records.filter { $0.threadNames.contains { $0.contains(" running on thread ") } }
        try #require(!running.isEmpty, "\(result.stdout)")
        for record in running {
            #expect(record.functions.last == "closure #1 in SwiftAsync.requests() async", "\(result.stdout)")
            #expect(!record.functions.contains("swift_job_run"), "\(result.stdout)")
            if record.functions.first == "SwiftAsync.hot(_:)" {
                #expect(Array(record.functions.prefix(2)) == ["SwiftAsync.hot(_:)", "SwiftAsync.sharedLookup(_:kind:) async"])
            }
        }
        fixture.expectRunning()
    }

    /// Each sample of a thread running a task carries the task's id and name as pprof
    /// labels: the same id dump --tasks gives the task of that name; go tool pprof
    /// lists them.
    @Test func samplesAreLabelledWithTheirTask() throws {
        let fixture = try Fixture(Self.executable, arguments: ["requests"])
        defer { fixture.stop() }
        let tasks = try parseProfile(try swiftprof("dump", "--tasks", "\(fixture.pid)").stdout)
        var ids: [String: String] = [:]
        for record in tasks.records {
            for (id, state) in zip(record.threadIDs, record.threadNames) where state.hasPrefix("\"server ") {
                ids[String(state.dropFirst().prefix { $0 != "\"" })] = String(id)
            }
        }
        try #require(ids.count == 2, "\(tasks.records.map(\.threadNames))")
        let result = try swiftprof("attach", "--mode", "cpu", "--duration", "1s", "\(fixture.pid)")
        #expect(result.status == 0, "\(result.stderr)")
        let profile = try parseProfile(result.stdout)
        let hot = profile.records.filter { $0.functions.contains("SwiftAsync.hot(_:)") }
        try #require(!hot.isEmpty, "\(result.stdout)")
        for record in hot {
            let name = try #require(record.labels["task_name"], "\(record.labels)")
            #expect(record.labels["task_id"] == ids[name], "\(record.labels) \(ids)")
        }
        #expect(Set(hot.compactMap { $0.labels["task_name"] }) == ["server 1", "server 2"])
        #expect(result.stdout.contains("\n# labels: {\"task_id\":"), "\(result.stdout)")

        let proto = FileManager.default.temporaryDirectory.appendingPathComponent("task-labels-\(getpid()).pb.gz").path
        defer { try? FileManager.default.removeItem(atPath: proto) }
        #expect(try swiftprof("attach", "--mode", "cpu", "--duration", "1s", "--format", "pprof", "-o", proto, "\(fixture.pid)").status == 0)
        let tags = try run("go", ["tool", "pprof", "-tags", proto], environment: FormatsTests.goEnvironment)
        #expect(tags.stdout.contains("task_name") && tags.stdout.contains("server 1") && tags.stdout.contains("task_id"),
                "\(tags.stdout)\(tags.stderr)")
    }
}
