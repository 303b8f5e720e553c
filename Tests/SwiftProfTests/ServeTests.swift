// `serve` read by the real `go tool pprof` and curl over loopback, and `attach
// --push` received by a Pyroscope-style ingest fixture (Fixtures/go/ingest) whose
// uploads are read back by go tool pprof and by swiftprof's own reader.
import Foundation
import Glibc
import SwiftProfHTTP
import Synchronization
import Testing

@Suite(.serialized)
struct ServeTests {
    // MARK: - serve

    /// A thread snapshot as every encoding Go's handler has: debug=1 is `dump`'s text
    /// (the process is parked: the same state, the same records), debug=0 is pprof
    /// that go tool pprof reads, debug=2 one traceback a thread.
    @Test func aSnapshotInEveryEncoding() throws {
        let fixture = try Fixture.c("parked")
        defer { fixture.stop() }
        let server = try ServeProcess(pid: fixture.pid)
        defer { server.end() }
        let dump = try swiftprof("dump", "\(fixture.pid)")
        let text = try http(server.url("goroutine?debug=1"))
        #expect(text.status == 200 && text.header("Content-Type") == "text/plain; charset=utf-8")
        #expect(records(text.body) == records(dump.stdout), "serve:\n\(text.body)\ndump:\n\(dump.stdout)")
        #expect(text.body.hasPrefix("thread profile: total "))

        let top = try goPprof(["-top", server.url("goroutine")])
        #expect(top.stdout.contains("Type: thread"), "\(top.stdout)\(top.stderr)")
        let total = try parseProfile(dump.stdout).records.reduce(0) { $0 + $1.count }
        #expect(top.stdout.contains("of \(total) total"), "\(top.stdout)")

        let traceback = try http(server.url("goroutine?debug=2"))
        let headers = traceback.body.split(separator: "\n").filter { $0.hasPrefix("thread ") }
        #expect(headers.count == total, "\(traceback.body)")
        #expect(try http(server.url("goroutine?debug=x")).status == 400)
        #expect(try http(server.url("heap")).status == 404)
        #expect(try http(server.url("")).body.contains("<a href=\"profile\">profile</a>"))
        fixture.expectRunning()
    }

    /// `profile` is Go's CPU profile: only threads on a CPU (hot.c's burner, not its
    /// main thread in read), in seconds of CPU; `wallclock` has every thread.
    @Test func aCPUProfileAndAWallClockProfile() throws {
        let fixture = try Fixture.c("hot")
        defer { fixture.stop() }
        let server = try ServeProcess(pid: fixture.pid)
        defer { server.end() }
        let cpu = try goPprof(["-top", server.url("profile?seconds=2")])
        #expect(cpu.stdout.contains("Type: cpu"), "\(cpu.stdout)\(cpu.stderr)")
        #expect(cpu.stdout.contains("Duration: 2"), "\(cpu.stdout)")
        let rows = topRows(cpu.stdout)
        #expect(rows.first?.function == "spin_work", "\(cpu.stdout)")
        #expect(!rows.contains { ["anon_pipe_read", "__GI___libc_read", "main"].contains($0.function) },
                "a blocked thread in a CPU profile:\n\(cpu.stdout)")
        // One thread always on a CPU for 2 s: about 2 s of CPU in samples of 10 ms.
        // Ticks are jittered but keep to the rate; the first pass and the last tick
        // make the count a few short at most.
        let seconds = try #require(totalSeconds(cpu.stdout))
        #expect(seconds > 1.7 && seconds <= 2.1, "\(cpu.stdout)")

        let wall = try goPprof(["-top", server.url("wallclock?seconds=1")])
        #expect(wall.stdout.contains("Type: wall"), "\(wall.stdout)\(wall.stderr)")
        let wallRows = topRows(wall.stdout).map(\.function)
        #expect(wallRows.contains("spin_work") && wallRows.contains("anon_pipe_read"), "\(wall.stdout)")
        fixture.expectRunning()
    }

    /// A Go program's goroutines by default, record for record as its own handler
    /// lists them (less the goroutines our requests made), and its threads on request.
    @Test func aGoProgramsGoroutinesAsGoServesThem() throws {
        let fixture = try Fixture.go("kvserver")
        defer { fixture.stop() }
        let server = try ServeProcess(pid: fixture.pid)
        defer { server.end() }
        let ours = try http(server.url("goroutine?debug=1")).body
        let port = try #require(fixture.readyWords.dropFirst().first)
        let gos = try http("http://127.0.0.1:\(port)/debug/pprof/goroutine?debug=1").body
        let mine = DumpGoTests.recordBlocks(ours).filter { !DumpGoTests.servesARequest($0) && !DumpGoTests.acceptsTheRequest($0) }
        let theirs = DumpGoTests.recordBlocks(gos).filter { !DumpGoTests.servesARequest($0) && !DumpGoTests.acceptsTheRequest($0) }
        #expect(mine == theirs && mine.count >= 4, "serve:\n\(ours)\nGo:\n\(gos)")
        let top = try goPprof(["-top", server.url("goroutine")])
        #expect(top.stdout.contains("Type: goroutine"), "\(top.stdout)\(top.stderr)")
        #expect(try http(server.url("goroutine?debug=1&view=threads")).body.hasPrefix("thread profile: total "))
        fixture.expectRunning()
    }

    /// A Swift program's tasks on request (view=tasks): the records `dump --tasks` prints.
    @Test func aSwiftProgramsTasksOnRequest() throws {
        let fixture = try Fixture(DumpTasksTests.executable)
        defer { fixture.stop() }
        let server = try ServeProcess(pid: fixture.pid)
        defer { server.end() }
        let dump = try swiftprof("dump", "--tasks", "\(fixture.pid)")
        let served = try http(server.url("goroutine?debug=1&view=tasks")).body
        #expect(served.hasPrefix("task profile: total "), "\(served)")
        #expect(records(served) == records(dump.stdout), "serve:\n\(served)\ndump:\n\(dump.stdout)")
        #expect(try http(server.url("goroutine?debug=1")).body.hasPrefix("thread profile: total "))
        let top = try goPprof(["-top", server.url("goroutine?view=tasks")])
        #expect(top.stdout.contains("Type: task"), "\(top.stdout)\(top.stderr)")
        fixture.expectRunning()
    }

    /// Loopback unless told otherwise (then a warning), and the token when one is given.
    @Test func loopbackByDefaultAndTheToken() throws {
        let fixture = try Fixture.c("parked")
        defer { fixture.stop() }
        let standard = try ServeProcess(pid: fixture.pid, listen: nil)
        #expect(standard.address == "127.0.0.1:6060", "\(standard.address)")
        // The kernel's own table: listening (0A) on 127.0.0.1:6060, on no other address.
        let table = try String(contentsOfFile: "/proc/net/tcp", encoding: .utf8) + (try String(contentsOfFile: "/proc/net/tcp6", encoding: .utf8))
        let listening = table.split(separator: "\n").filter { $0.split(separator: " ").count > 3 && $0.split(separator: " ")[3] == "0A" }
            .map { String($0.split(separator: " ")[1]) }.filter { $0.hasSuffix(":17AC") }
        #expect(listening == ["0100007F:17AC"], "\(listening)")
        standard.end()

        let open = try ServeProcess(pid: fixture.pid, listen: "0.0.0.0:0")
        #expect(open.linesBeforeReady.contains { $0.contains("not loopback") }, "\(open.linesBeforeReady)")
        open.end()

        let directory = try FormatsTests.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let tokenFile = directory.appendingPathComponent("token").path
        try "s3cret-token\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let guarded = try ServeProcess(pid: fixture.pid, extra: ["--token-file", tokenFile])
        defer { guarded.end() }
        let refused = try http(guarded.url("goroutine?debug=1"))
        #expect(refused.status == 401 && refused.header("WWW-Authenticate")?.hasPrefix("Bearer") == true)
        #expect(try http(guarded.url("goroutine?debug=1"), token: "wrong").status == 401)
        let allowed = try http(guarded.url("goroutine?debug=1"), token: "s3cret-token")
        #expect(allowed.status == 200 && allowed.body.hasPrefix("thread profile: total "))
        fixture.expectRunning()
    }

    /// One capture at a time: a second profile while one is taken gets 503 and
    /// Retry-After (as Go refuses a second CPU profile); a snapshot waits its turn
    /// (a scraper asks for goroutines while its CPU profile is taken).
    @Test func oneCaptureAtATime() throws {
        let fixture = try Fixture.c("parked")
        defer { fixture.stop() }
        let server = try ServeProcess(pid: fixture.pid)
        defer { server.end() }
        let first = Mutex<HTTPResult?>(nil)
        let done = DispatchSemaphore(value: 0)
        let url = server.url("profile?seconds=3")
        DispatchQueue.global().async {
            first.withLock { $0 = try? http(url) }
            done.signal()
        }
        // serve says when a capture starts: the other requests are sent after it.
        let started = try #require(server.nextLine())
        #expect(started.contains("profile?seconds=3"), "\(started)")
        let busy = try http(server.url("wallclock?seconds=1"))
        #expect(busy.status == 503, "\(busy.status) \(busy.body)")
        let retry = busy.header("Retry-After").flatMap { Int($0) }
        #expect(retry != nil && retry! >= 1 && retry! <= 3, "\(busy.headers)")
        let snapshot = try http(server.url("goroutine?debug=1"))
        #expect(snapshot.status == 200 && snapshot.body.hasPrefix("thread profile: total "))
        // The snapshot was taken after the profile, not beside it.
        #expect(server.nextLine()?.contains("goroutine?debug=1") == true)
        done.wait()
        let answer = try #require(first.withLock { $0 })
        #expect(answer.status == 200 && answer.raw.starts(with: [0x1f, 0x8b]))
        fixture.expectRunning()
    }

    /// The process's end ends serve with status 1 and a line that says so.
    @Test func theTargetsEndEndsServe() throws {
        let fixture = try Fixture.c("parked")
        let server = try ServeProcess(pid: fixture.pid)
        fixture.stop()
        #expect(server.waitForExit() == 1)
        #expect(server.remainingLines().contains { $0.contains("process \(fixture.pid) exited") })
    }

    /// SIGTERM during a profile: serve lets the process go and ends with status 0.
    @Test func sigtermEndsServeWithNothingHeld() throws {
        let fixture = try Fixture.c("hot")
        defer { fixture.stop() }
        let server = try ServeProcess(pid: fixture.pid)
        let url = server.url("profile?seconds=30")
        DispatchQueue.global().async { _ = try? http(url) }
        _ = try #require(server.nextLine())
        kill(server.pid, SIGTERM)
        #expect(server.waitForExit() == 0)
        fixture.expectRunning()
        let status = try String(contentsOfFile: "/proc/\(fixture.pid)/status", encoding: .utf8)
        #expect(status.contains("TracerPid:\t0\n"), "\(status)")
    }

    @Test func routesAsGosHandlerDecidesThem() throws {
        #expect(try PprofRoute.parse("/debug/pprof/").get() == .index)
        #expect(try PprofRoute.parse("/debug/pprof/profile").get() == .profile(seconds: 30, clock: .cpu))
        #expect(try PprofRoute.parse("/debug/pprof/wallclock?seconds=5").get() == .profile(seconds: 5, clock: .wall))
        #expect(try PprofRoute.parse("/debug/pprof/goroutine").get() == .snapshot(.pprof, view: nil))
        #expect(try PprofRoute.parse("/debug/pprof/goroutine?debug=7&view=tasks").get() == .snapshot(.traceback, view: .tasks))
        for bad in ["/debug/pprof/profile?seconds=0", "/debug/pprof/profile?seconds=601", "/debug/pprof/goroutine?view=fibers",
                    "/debug/pprof/goroutine?debug=-1"] {
            #expect(throws: PprofRoute.Refusal.self, "\(bad)") { try PprofRoute.parse(bad).get() }
        }
        #expect((try? PprofRoute.parse("/debug/pprof/heap").get()) == nil)
        #expect(ListenAddressProbe.valid("[::1]:6060") && ListenAddressProbe.valid(":0") && !ListenAddressProbe.valid("::1:6060"))
    }

    // MARK: - push

    /// Every interval uploaded while attached, the stretches one after another, their
    /// samples adding up to the local profile's exactly; a refused upload retried.
    @Test func pushUploadsEachIntervalAndTheirSumIsTheProfile() throws {
        let receiver = try Fixture.go("ingest", arguments: ["-fail", "1"])
        defer { receiver.stop() }
        let fixture = try Fixture.c("hot")
        defer { fixture.stop() }
        let directory = try FormatsTests.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let local = directory.appendingPathComponent("local.txt").path
        let port = try #require(receiver.readyWords.dropFirst().first)
        let result = try swiftprof("attach", "\(fixture.pid)", "--duration", "3.5s", "-o", local,
                                   "--push", "http://127.0.0.1:\(port)", "--push-interval", "1s")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("answered 500; retrying"), "\(result.stderr)")
        let localTotal = try parseProfile(String(contentsOfFile: local, encoding: .utf8)).records.reduce(0) { $0 + $1.count }
        var uploads: [[String: String]] = []
        var sum = 0
        while sum < localTotal, uploads.count < 8, let line = receiver.ask("next"), line.hasPrefix("upload ") {
            let fields = Dictionary(line.split(separator: " ").dropFirst().compactMap { field -> (String, String)? in
                let parts = field.split(separator: "=", maxSplits: 1)
                return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
            }, uniquingKeysWith: { first, _ in first })
            uploads.append(fields)
            let read = try swiftprof("dump", "--input", try #require(fields["file"]))
            sum += try parseProfile(read.stdout).records.reduce(0) { $0 + $1.count }
        }
        #expect(sum == localTotal, "\(uploads)")
        #expect((3...5).contains(uploads.count), "\(uploads)")
        #expect(uploads.allSatisfy { $0["name"] == "hot" && $0["format"] == "pprof" && $0["rate"] == "100" }, "\(uploads)")
        let stretches = uploads.compactMap { upload in upload["from"].flatMap(Int.init).flatMap { from in upload["until"].flatMap(Int.init).map { (from, $0) } } }
        #expect(stretches.count == uploads.count)
        // In order, each starting where the one before ended (to the second).
        for (earlier, later) in zip(stretches, stretches.dropFirst()) { #expect(later.0 >= earlier.0 && later.0 <= earlier.1, "\(stretches)") }
        let top = try goPprof(["-top", try #require(uploads.first?["file"])])
        #expect(top.stdout.contains("Type: wall") && topRows(top.stdout).contains { $0.function == "spin_work" }, "\(top.stdout)\(top.stderr)")
        fixture.expectRunning()
    }

    /// Without an interval, one upload of the whole run; an unreachable server is
    /// retried, reported, and the local profile still written (status 1).
    @Test func pushOnceAtTheEndAndAFailedPush() throws {
        let receiver = try Fixture.go("ingest")
        defer { receiver.stop() }
        let fixture = try Fixture.c("hot")
        defer { fixture.stop() }
        let port = try #require(receiver.readyWords.dropFirst().first)
        let result = try swiftprof("attach", "\(fixture.pid)", "--duration", "1s", "--mode", "cpu", "--push", "http://127.0.0.1:\(port)/",
                                   "--push-name", "burner{env=test}")
        #expect(result.status == 0, "\(result.stderr)")
        let line = try #require(receiver.ask("next"))
        #expect(line.hasPrefix("upload name=burner{env=test} "), "\(line)")
        let file = try #require(line.split(separator: " ").first { $0.hasPrefix("file=") }).dropFirst(5)
        let uploaded = try parseProfile(try swiftprof("dump", "--input", String(file)).stdout)
        #expect(uploaded.records.reduce(0) { $0 + $1.count } == (try parseProfile(result.stdout)).records.reduce(0) { $0 + $1.count })
        let top = try goPprof(["-top", String(file)])
        #expect(top.stdout.contains("Type: cpu"), "\(top.stdout)\(top.stderr)")

        let directory = try FormatsTests.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let local = directory.appendingPathComponent("local.txt").path
        let failed = try swiftprof("attach", "\(fixture.pid)", "--duration", "0.3s", "-o", local, "--push", "http://127.0.0.1:1")
        #expect(failed.status == 1, "\(failed.stderr)")
        #expect(failed.stderr.contains("given up after \(PushSessionProbe.tries) tries"), "\(failed.stderr)")
        #expect((try? String(contentsOfFile: local, encoding: .utf8))?.hasPrefix("thread profile: total ") == true)
        #expect(try swiftprof("attach", "\(fixture.pid)", "--push", "https://example.com").status == 64)
        #expect(try swiftprof("attach", "\(fixture.pid)", "--push-interval", "5s").status == 64)
        fixture.expectRunning()
    }

    // MARK: - helpers

    /// The records of a text snapshot, sorted. A running thread's pc moves between two
    /// captures (the spinner's loop is several instructions): its record is compared by
    /// its state and functions, without addresses and offsets.
    private func records(_ text: String) -> [String] {
        text.components(separatedBy: "\n\n").map { block in
            let lines = block.split(separator: "\n").filter { !$0.hasPrefix("# capture:") && !$0.contains(" profile: total ") }
            guard lines.contains(where: { $0.hasPrefix("# state: R ") }) else { return lines.joined(separator: "\n") }
            return lines.compactMap { line -> Substring? in
                if line.hasPrefix("# state: ") { return line }
                guard line.hasPrefix("#\t") else { return nil }
                return line.split(separator: "\t", omittingEmptySubsequences: true).dropFirst(2).first?.split(separator: "+").first
            }.joined(separator: "\n")
        }.filter { !$0.isEmpty }.sorted()
    }

    private func goPprof(_ arguments: [String]) throws -> CommandResult {
        try run("go", ["tool", "pprof"] + arguments, environment: FormatsTests.goEnvironment)
    }

    /// The rows of `go tool pprof -top`: flat value and function, in its order.
    private func topRows(_ text: String) -> [(flat: String, function: String)] {
        text.split(separator: "\n").drop { !$0.contains("flat%") }.dropFirst().compactMap { row in
            let columns = row.split(separator: " ", omittingEmptySubsequences: true)
            return columns.count >= 6 ? (String(columns[0]), columns[5...].joined(separator: " ")) : nil
        }
    }

    /// "Total samples = 1.98s" of `go tool pprof -top`, in seconds.
    private func totalSeconds(_ text: String) -> Double? {
        guard let range = text.range(of: "Total samples = ") else { return nil }
        let value = text[range.upperBound...].prefix { $0 != " " && $0 != "\n" }
        if value.hasSuffix("ms") { return Double(value.dropLast(2)).map { $0 / 1000 } }
        if value.hasSuffix("s") { return Double(value.dropLast()) }
        return nil
    }
}

/// What ListenAddress and PushSession decide, seen from the tests through the binary.
private enum ListenAddressProbe {
    static func valid(_ address: String) -> Bool {
        // --listen is checked first; --rate 0 then stops the command before it looks at PID 1.
        (try? swiftprof("serve", "1", "--listen", address, "--rate", "0"))?.stderr.contains("--listen takes") == false
    }
}

private enum PushSessionProbe {
    /// One try and three retries (PushSession.backoffMilliseconds).
    static let tries = 4
}

struct HTTPResult {
    let status: Int
    let headers: [String]
    let raw: [UInt8]
    var body: String { String(decoding: raw, as: UTF8.self) }

    func header(_ name: String) -> String? {
        headers.first { $0.lowercased().hasPrefix(name.lowercased() + ":") }
            .map { String($0.dropFirst(name.count + 1)).trimmingCharacters(in: .whitespaces) }
    }
}

/// One GET with curl: status, response headers and body.
func http(_ url: String, token: String? = nil) throws -> HTTPResult {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftprof-http-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let body = directory.appendingPathComponent("body").path, headers = directory.appendingPathComponent("headers").path
    let result = try run("curl", ["-s", "-o", body, "-D", headers, "-w", "%{http_code}", "--max-time", "60"]
                         + (token.map { ["-H", "Authorization: Bearer \($0)"] } ?? []) + [url])
    let raw = (try? Data(contentsOf: URL(fileURLWithPath: body))).map { [UInt8]($0) } ?? []
    let lines = ((try? String(contentsOfFile: headers, encoding: .utf8)) ?? "").components(separatedBy: "\r\n").filter { !$0.isEmpty }
    return HTTPResult(status: Int(result.stdout) ?? 0, headers: lines, raw: raw)
}

/// `swiftprof serve PID` in the background, ready once it says where it listens
/// (its stderr line "serving http://HOST:PORT/debug/pprof/ …").
final class ServeProcess: @unchecked Sendable {
    let pid: pid_t
    /// HOST:PORT it listens on.
    let address: String
    let linesBeforeReady: [String]
    private let errors: FileHandle
    private let exit = Mutex<Int32?>(nil)

    /// `listen` nil: serve's default.
    convenience init(pid target: Int32, listen: String? = "127.0.0.1:0", extra: [String] = []) throws {
        try self.init(targets: ["\(target)"], listen: listen, extra: extra)
    }

    /// `targets`: what serve is given to serve (a PID, `--children PID`, ...).
    init(targets: [String], listen: String? = "127.0.0.1:0", extra: [String] = []) throws {
        var fromChild: [Int32] = [0, 0]
        guard pipe(&fromChild) == 0 else { throw FixtureError.notReady("serve") }
        for fd in fromChild { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 2)
        closeInheritedDescriptors(&actions)
        var child: pid_t = 0
        let arguments = [Paths.swiftprof, "serve"] + targets + (listen.map { ["--listen", $0] } ?? []) + extra
        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let spawned = posix_spawn(&child, Paths.swiftprof, &actions, nil, argv, environ)
        close(fromChild[1])
        errors = FileHandle(fileDescriptor: fromChild[0], closeOnDealloc: true)
        guard spawned == 0 else { throw FixtureError.notReady("serve: \(String(cString: strerror(spawned)))") }
        pid = child
        let watchdog = DispatchWorkItem { [pid = child] in kill(pid, SIGKILL) }
        DispatchQueue.global().asyncAfter(deadline: .now() + 60, execute: watchdog)
        var before: [String] = []
        var found: String?
        while let line = Fixture.readLine(errors) {
            if let range = line.range(of: "serving http://") {
                found = String(line[range.upperBound...].prefix { $0 != "/" })
                break
            }
            before.append(line)
        }
        watchdog.cancel()
        linesBeforeReady = before
        guard let found else {
            kill(child, SIGKILL)
            var status: Int32 = 0
            while waitpid(child, &status, 0) < 0 && errno == EINTR {}
            throw FixtureError.notReady("serve: \(before.joined(separator: "; "))")
        }
        address = found
    }

    func url(_ path: String) -> String { "http://\(address)/debug/pprof/\(path)" }

    /// serve's next line on stderr (nil at its end, or after 60 s).
    func nextLine() -> String? {
        let watchdog = DispatchWorkItem { [pid] in kill(pid, SIGKILL) }
        DispatchQueue.global().asyncAfter(deadline: .now() + 60, execute: watchdog)
        defer { watchdog.cancel() }
        return Fixture.readLine(errors)
    }

    func remainingLines() -> [String] {
        var lines: [String] = []
        while let line = Fixture.readLine(errors) { lines.append(line) }
        return lines
    }

    /// Its exit status (128 + signal when a signal ended it).
    @discardableResult
    func waitForExit() -> Int32 {
        exit.withLock { status in
            if let status { return status }
            var raw: Int32 = 0
            while waitpid(pid, &raw, 0) < 0 && errno == EINTR {}
            status = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
            return status!
        }
    }

    func end() {
        if exit.withLock({ $0 }) == nil { kill(pid, SIGTERM) }
        waitForExit()
    }

    deinit { end() }
}
