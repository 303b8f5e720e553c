// `swiftprof top` in a real terminal: tmux runs it, capture-pane reads the screen.
import Foundation
import Glibc
import Testing

struct TopTests {
    @Test func showsTheHotFunctionAndQuitsOnQ() throws {
        let fixture = try Fixture.c("hot", arguments: ["1", "0"])
        defer { fixture.stop() }
        let session = "swiftprof-top-\(getpid())"
        let start = try run("tmux", ["new-session", "-d", "-s", session, "-x", "160", "-y", "30",
                                     "\(Paths.swiftprof) top --rate 200 \(fixture.pid)"])
        #expect(start.status == 0, "\(start.stderr)")
        defer { _ = try? run("tmux", ["kill-session", "-t", session]) }

        // The screen is redrawn every second: read it until the table shows up.
        var screen = ""
        try poll { () throws -> Bool in
            screen = try run("tmux", ["capture-pane", "-p", "-t", session]).stdout
            return screen.contains("warm_function")
        }
        #expect(screen.contains("swiftprof top \(fixture.pid) (hot): "))
        let rows = screen.split(separator: "\n")
        let leaf = try #require(rows.first { $0.hasSuffix("spin_work (hot.c:\(sourceLine("Fixtures/c/hot.c", containing: "for (volatile int i = 0; i < n; i++)")))") })
        #expect(leaf.hasPrefix("100.0% 100.0%"))  // one running thread, always in spin_work
        #expect(rows.contains { $0.contains("hot_function (hot.c:") })

        #expect(try run("tmux", ["send-keys", "-t", session, "q"]).status == 0)
        try poll { try run("tmux", ["has-session", "-t", session]).status != 0 }
        fixture.expectRunning()
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
