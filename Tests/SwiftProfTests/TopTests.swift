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
                                      "\(Paths.swiftprof) top --rate 200 \(fixture.pid)"]).status == 0)
        defer { _ = spawnDetached(tmux + ["kill-server"]) }

        // The screen is redrawn every second: read it until the table shows up.
        var screen = ""
        try poll { () throws -> Bool in
            screen = try run(tmux[0], Array(tmux.dropFirst()) + ["capture-pane", "-p"]).stdout
            return screen.contains("warm_function")
        }
        #expect(screen.contains("swiftprof top \(fixture.pid) (hot): "))
        let rows = screen.split(separator: "\n")
        let leaf = try #require(rows.first { $0.hasSuffix("spin_work (hot.c:\(sourceLine("Fixtures/c/hot.c", containing: "for (volatile int i = 0; i < n; i++)")))") })
        // One running thread, nearly always in spin_work (a sample may land on a call or return).
        let own = try #require(Double(leaf.split(separator: "%").first!.trimmingCharacters(in: .whitespaces)))
        #expect(own >= 95)
        #expect(rows.contains { $0.contains("hot_function (hot.c:") })

        #expect(spawnDetached(tmux + ["send-keys", "q"]).status == 0)
        try poll { spawnDetached(tmux + ["has-session"]).status != 0 }
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
