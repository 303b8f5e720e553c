// `swiftprof top` in a real terminal: tmux runs it, capture-pane reads the screen.
import Foundation
import Glibc
import Testing

struct TopTests {
    @Test func showsTheHotFunctionAndQuitsOnQ() throws {
        let fixture = try Fixture.c("hot", arguments: ["1", "0"])
        defer { fixture.stop() }
        // A tmux server of its own, started with none of our descriptors: a server that
        // inherited the fixture's stdin pipe would keep the fixture from seeing EOF.
        let tmux = ["tmux", "-L", "swiftprof-test-\(getpid())", "-f", "/dev/null"]
        #expect(spawnDetached(tmux + ["new-session", "-d", "-x", "160", "-y", "30",
                                      "\(Paths.swiftprof) top --rate 200 \(fixture.pid)"]) == 0)
        defer { _ = spawnDetached(tmux + ["kill-server"]) }

        // The screen is redrawn every second: read it until the table shows up.
        var screen = ""
        try poll { () throws -> Bool in
            screen = try run(tmux[0], Array(tmux.dropFirst()) + ["capture-pane", "-p"]).stdout
            return screen.contains("warm_function")
        }
        #expect(screen.contains("swiftprof top \(fixture.pid) (hot): "))
        let rows = screen.split(separator: "\n")
        // A function's file, not the line of one sample (it changed between refreshes).
        let leaf = try #require(rows.first { $0.hasSuffix("spin_work (hot.c)") }, "\(screen)")
        // One running thread, nearly always in spin_work (a sample may land on a call or return).
        let own = try #require(Double(leaf.split(separator: "%").first!.trimmingCharacters(in: .whitespaces)))
        #expect(own >= 95)
        #expect(rows.contains { $0.hasSuffix("hot_function (hot.c)") })
        #expect(screen.contains(" since the start, ") && screen.contains("(q quits)"))

        #expect(spawnDetached(tmux + ["send-keys", "q"]) == 0)
        try poll { spawnDetached(tmux + ["has-session"]) != 0 }
        fixture.expectRunning()
    }
}

extension TopTests {
    /// Without a terminal: no screens, no "(q quits)", one table when the process ends
    /// (the fixture's own lifetime, 1.5 s), and exit status 1 as attach gives.
    @Test func withoutATerminalItPrintsOneTableAtTheEnd() throws {
        let fixture = try Fixture.c("hot", arguments: ["1", "0", "1500"])
        defer { fixture.stop() }
        let threads = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(fixture.pid)/task").count
        let result = try swiftprof("top", "--rate", "200", "\(fixture.pid)")
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr == "swiftprof: process \(fixture.pid) exited\n")
        let headers = result.stdout.split(separator: "\n").filter { $0.hasPrefix("swiftprof top ") }
        #expect(headers.count == 1, "\(result.stdout)")
        // The process's threads, not those on a CPU at the last tick (#31: "0 threads");
        // ticks lost are the sampler's, none to drawing with no screen to draw.
        let header = try #require(headers.first)
        #expect(header.contains(" ticks at 200 Hz since the start, \(threads) threads, "), "\(header)")
        let lost = try #require(header.split(separator: " ").split(separator: "lost").last?.first.flatMap { Int($0) }, "\(header)")
        let ticks = try #require(header.split(separator: ", ").dropFirst().first?.split(separator: " ").first.flatMap { Int($0) }, "\(header)")
        #expect(ticks >= 200 && lost * 100 <= ticks, "\(header)")
        #expect(!header.contains("while drawing"), "\(header)")
        #expect(!result.stdout.contains("q quits") && !result.stdout.contains("\u{1b}"), "\(result.stdout)")
        #expect(result.stdout.contains("spin_work (hot.c)"), "\(result.stdout)")
    }
}

extension TopTests {
    /// Several processes: their functions in one table, the header says how many; it
    /// ends when every process has (two fixtures of 1.5 s each).
    @Test func severalProcessesInOneTable() throws {
        let first = try Fixture.c("hot", arguments: ["1", "0", "1500"]), second = try Fixture.c("hot", arguments: ["1", "0", "1500"])
        defer { first.stop(); second.stop() }
        let result = try swiftprof("top", "--rate", "200", "\(first.pid)", "\(second.pid)")
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr == "swiftprof: every process exited\n", "\(result.stderr)")
        #expect(result.stdout.hasPrefix("swiftprof top 2 processes: "), "\(result.stdout)")
        // Two running threads, each nearly always in spin_work.
        let leaf = try #require(result.stdout.split(separator: "\n").first { $0.hasSuffix("spin_work (hot.c)") }, "\(result.stdout)")
        let own = try #require(Double(leaf.split(separator: "%").first!.trimmingCharacters(in: .whitespaces)))
        #expect(own >= 95, "\(result.stdout)")
    }
}

/// Checks `condition` every 50 ms for up to 20 s: for output that appears on its
/// own schedule (a screen redrawn every second), not to wait for a process.
func poll(_ condition: () throws -> Bool, sourceLocation: SourceLocation = #_sourceLocation) throws {
    for _ in 0..<400 {
        if try condition() { return }
        usleep(50_000)
    }
    Issue.record("condition not met within 20 s", sourceLocation: sourceLocation)
}
