// The layers view end to end, on the demo server: states, system calls,
// kernel frames, layers, subsystems, the matrix and the Mermaid chart.
import Foundation
import SwiftProf
import Testing

@Suite(.serialized)
struct LayersTests {
    static let source = "Fixtures/c/kvserver.c"
    /// /proc/PID/task/TID/stack needs root; without it there are no kernel frames to assert on.
    static let kernelStacksReadable = (try? String(contentsOfFile: "/proc/self/stack", encoding: .utf8)) != nil

    @Test func statesSystemCallsAndKernelFrames() throws {
        let fixture = try Fixture.c("kvserver")
        defer { fixture.stop() }
        let result = try swiftprof("dump", "\(fixture.pid)")
        #expect(result.status == 0, "\(result.stderr)")
        let profile = try parseProfile(result.stdout)
        #expect(profile.records.count == 6)
        let calls = profile.records.compactMap { $0.state?.systemCall?.name }.sorted()
        #expect(calls == ["accept4", "clock_nanosleep", "epoll_wait", "futex", "futex", "read"])
        #expect(profile.records.allSatisfy { $0.state?.code == "S" && $0.threadIDs.count == 1 })
        // The state line comes right after the "@" line, as a comment pprof skips.
        #expect(result.stdout.contains("\n# state: S (sleeping) syscall: accept4("))
        #expect(profile.records.map(\.threadNames).sorted { $0.lexicographicallyPrecedes($1) }
                == [["acceptor"], ["conn"], ["event-loop"], ["kvserver"], ["ttl-gc"], ["worker"]])

        let accept = try #require(profile.record(containing: "accept_connection"))
        #expect(accept.frame("accept_connection")?.line == sourceLine(Self.source, containing: "accept4(fd, NULL, NULL"))
        let loop = try #require(profile.record(containing: "run_event_loop"))
        #expect(loop.state?.systemCall?.arguments.last == "-1")  // the infinite timeout, as the int it is
        if Self.kernelStacksReadable {
            #expect(accept.kernelFunctions.first == "inet_csk_accept")
            #expect(accept.state?.wchan == "inet_csk_accept")
            #expect(loop.kernelFunctions.contains("do_epoll_wait"))
            // Kernel frames come first (leaf end), then the user frames.
            #expect(accept.locations.prefix { $0.isKernel }.count == accept.kernelFunctions.count)
            #expect(accept.locations.filter(\.isKernel).allSatisfy { $0.address >= 0xffff_8000_0000_0000 })
        }
        let without = try parseProfile(try swiftprof("dump", "--no-kernel", "\(fixture.pid)").stdout)
        #expect(without.records.allSatisfy { $0.kernelFunctions.isEmpty })
        fixture.expectRunning()
    }

    /// Without root there are no kernel stacks; asking for them says why.
    @Test func kernelFramesNeedRootAndSaySo() throws {
        let nobody = ["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]
        let target = try Paths.worldExecutable(try FixtureBuild.executable("kvserver"))
        let fixture = try Fixture("/usr/bin/setpriv", arguments: nobody + [target])
        defer { fixture.stop() }
        let result = try run("setpriv", nobody + [try Paths.worldExecutable(Paths.swiftprof), "dump", "--kernel", "\(fixture.readyPID)"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr == "swiftprof: kernel stacks are unreadable: /proc/PID/task/TID/stack needs root\n")
        let profile = try parseProfile(result.stdout)
        #expect(profile.records.allSatisfy { $0.kernelFunctions.isEmpty })
        #expect(profile.record(containing: "accept_connection")?.state?.systemCall?.name == "accept4")
    }

    @Test func everyThreadLandsInItsLayers() throws {
        let fixture = try Fixture.c("kvserver")
        defer { fixture.stop() }
        // Through the library, which keeps each frame's object (the text format does not).
        let (snapshot, _) = try Profiler.snapshot(pid: fixture.pid)
        let records = Grouper.records(snapshot.threads)
        let classifier = Classifier()
        func layers(_ function: String) throws -> [String: Layer] {
            let record = try #require(records.first { $0.functions.contains(function) })
            var byFunction: [String: Layer] = [:]
            for (location, layers) in zip(record.locations, classifier.layers(of: record)) {
                for (line, layer) in zip(location.lines, layers) where byFunction[line.function] == nil {
                    byFunction[line.function] = layer
                }
            }
            return byFunction
        }
        let accept = try layers("accept_connection")
        #expect(accept["accept4"] == .syscall)
        #expect(accept["accept_connection"] == .app)
        #expect(accept["serve_http"] == .app)
        #expect(accept["start_thread"] == .runtime)
        if Self.kernelStacksReadable { #expect(accept["inet_csk_accept"] == .kernel) }
        let worker = try layers("store_worker")
        #expect(worker["__futex_abstimed_wait_common64"] == .syscall)
        #expect(worker["___pthread_cond_wait"] == .runtime)
        #expect(worker["store_worker"] == .app)
        let gc = try layers("sleep_until_next_sweep")
        #expect(gc["__GI___clock_nanosleep"] == .syscall)
        #expect(gc["store_ttl_gc"] == .app)
        let reader = try layers("read_request")
        #expect(reader["__GI___libc_read"] == .syscall)
        #expect(reader["handle_connection"] == .app)
    }

    @Test func matrixHasTheReferenceColumns() throws {
        let fixture = try Fixture.c("kvserver")
        defer { fixture.stop() }
        let result = try swiftprof("dump", "--format", "layers", "\(fixture.pid)")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(!result.stdout.contains("\u{1b}["), "no colour when piped")
        let rows = result.stdout.split(separator: "\n").map { $0.components(separatedBy: "  ").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
        #expect(rows.first == ["APPLICATION", "RUNTIME ENTRY", "SYSTEM CALL", "KERNEL SUBSYSTEM", "HARDWARE", "THREADS"])
        let byComponent = Dictionary(rows.dropFirst().map { ($0[0], Array($0.dropFirst())) }, uniquingKeysWith: { a, _ in a })
        #expect(byComponent["serve_http → accept_connection"] == ["accept4", "accept4", "TCP/IP", "NIC", "1"])
        #expect(byComponent["handle_connection → read_request"] == ["__GI___libc_read", "read", "TCP/IP", "NIC", "1"])
        #expect(byComponent["run_event_loop"] == ["epoll_wait", "epoll_wait", "eventpoll", "none", "1"])
        #expect(byComponent["store_ttl_gc → sleep_until_next_sweep"] == ["__GI___clock_nanosleep", "clock_nanosleep", "hrtimer", "timer", "1"])
        #expect(byComponent["store_worker"] == ["___pthread_cond_wait", "futex", "futex", "none", "1"])

        let markdown = try swiftprof("dump", "--format", "layers", "--markdown", "\(fixture.pid)").stdout
        #expect(markdown.hasPrefix("| Application | Runtime entry | System call | Kernel subsystem | Hardware | Threads |\n| --- |"))
        #expect(markdown.contains("| serve_http → accept_connection | accept4 | accept4 | TCP/IP | NIC | 1 |"))
        let colored = try swiftprof("dump", "--format", "layers", "--color", "always", "\(fixture.pid)").stdout
        #expect(colored.contains("\u{1b}[32mserve_http → accept_connection"))
    }

    @Test func userRulesClaimFramesFirst() throws {
        let fixture = try Fixture.c("kvserver")
        defer { fixture.stop() }
        let table = try swiftprof("dump", "--format", "layers", "--layer", "runtime=accept_connection", "\(fixture.pid)").stdout
        // accept_connection is runtime now: serve_http is the innermost app frame, and calls it.
        let row = try #require(table.split(separator: "\n").first { $0.hasPrefix("serve_http ") })
        #expect(row.split(separator: " ", omittingEmptySubsequences: true).prefix(3) == ["serve_http", "accept_connection", "accept4"])

        let file = FileManager.default.temporaryDirectory.appendingPathComponent("rules-\(fixture.pid)").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        try "# storage code counts as runtime here\nruntime store_*\nruntime=sleep_until_next_sweep\n".write(toFile: file, atomically: true, encoding: .utf8)
        let ruled = try swiftprof("dump", "--format", "layers", "--layer-rules-file", file, "\(fixture.pid)").stdout
        #expect(!ruled.contains("store_worker"))
        #expect(!ruled.contains("sleep_until_next_sweep"))

        try "runtime store_*\nkernel=oops\n".write(toFile: file, atomically: true, encoding: .utf8)
        let bad = try swiftprof("dump", "--format", "layers", "--layer-rules-file", file, "\(fixture.pid)")
        #expect(bad.status == 64)
        #expect(bad.stderr == "swiftprof: \(file): line 2: bad layer rule \"kernel=oops\": the layer must be app, runtime or syscall\n")
        #expect(try swiftprof("dump", "--layer", "nonsense", "\(fixture.pid)").status == 64)
        fixture.expectRunning()
    }

    @Test func mermaidChartFollowsTheGrammar() throws {
        let fixture = try Fixture.c("kvserver")
        defer { fixture.stop() }
        let chart = try swiftprof("dump", "--format", "mermaid", "\(fixture.pid)").stdout
        try MermaidGrammar.check(chart)
        #expect(chart.contains("subgraph Application[\"Application\"]"))
        #expect(chart.contains("subgraph Kernel[\"Linux Kernel\"]"))
        #expect(chart.contains("[\"serve_http → accept_connection\"]"))
        #expect(chart.contains("[\"TCP/IP\"]"))
        #expect(chart.contains("-->|\"2 threads\"|"))  // the two futex waiters share their kernel edge
    }
}

/// The subset of Mermaid's flowchart grammar swiftprof writes, checked line by
/// line and for structure: balanced subgraphs, unique node ids, edges between
/// declared nodes, labels quoted with no raw quote or angle bracket inside.
enum MermaidGrammar {
    struct Violation: Error, CustomStringConvertible {
        let line: Int
        let text: String
        let reason: String
        var description: String { "mermaid line \(line) \(reason): \(text)" }
    }

    static let identifier = "[A-Za-z][A-Za-z0-9_]*"
    static let label = "\"[^\"<>]*\""

    static func check(_ chart: String) throws {
        let lines = chart.split(separator: "\n").map(String.init)
        guard lines.first?.range(of: "^flowchart (LR|RL|TD|TB|BT)$", options: .regularExpression) != nil else {
            throw Violation(line: 1, text: lines.first ?? "", reason: "is not a flowchart header")
        }
        var depth = 0
        var nodes: Set<String> = []
        var edges: [(Int, String, String)] = []
        for (index, line) in lines.enumerated().dropFirst() {
            let number = index + 1
            if let match = line.firstMatch(of: try Regex("^ +subgraph (\(identifier))(\\[\(label)\\])?$")) {
                depth += 1
                guard nodes.insert(String(match.output[1].substring!)).inserted else { throw Violation(line: number, text: line, reason: "reuses an id") }
            } else if line.range(of: "^ +end$", options: .regularExpression) != nil {
                depth -= 1
                guard depth >= 0 else { throw Violation(line: number, text: line, reason: "closes no subgraph") }
            } else if let match = line.firstMatch(of: try Regex("^ +(\(identifier))\\[\(label)\\]$")) {
                guard depth > 0 else { throw Violation(line: number, text: line, reason: "declares a node outside a subgraph") }
                guard nodes.insert(String(match.output[1].substring!)).inserted else { throw Violation(line: number, text: line, reason: "reuses an id") }
            } else if let match = line.firstMatch(of: try Regex("^ +(\(identifier)) -->\\|\(label)\\| (\(identifier))$")) {
                edges.append((number, String(match.output[1].substring!), String(match.output[2].substring!)))
            } else {
                throw Violation(line: number, text: line, reason: "matches no rule")
            }
        }
        guard depth == 0 else { throw Violation(line: lines.count, text: "", reason: "leaves a subgraph open") }
        for (number, from, to) in edges where !nodes.contains(from) || !nodes.contains(to) {
            throw Violation(line: number, text: "\(from) --> \(to)", reason: "joins an undeclared node")
        }
        guard !edges.isEmpty else { throw Violation(line: lines.count, text: "", reason: "has no edge") }
    }
}
