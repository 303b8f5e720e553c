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
        let leaf = try #require(rows.first { $0.hasSuffix("spin_work (hot.c:\(sourceLine("Fixtures/c/hot.c", containing: "for (volatile int i = 0; i < n; i++)")))") })
        // One running thread, nearly always in spin_work (a sample may land on a call or return).
        let own = try #require(Double(leaf.split(separator: "%").first!.trimmingCharacters(in: .whitespaces)))
        #expect(own >= 95)
        #expect(rows.contains { $0.contains("hot_function (hot.c:") })

        #expect(spawnDetached(tmux + ["send-keys", "q"]) == 0)
        try poll { spawnDetached(tmux + ["has-session"]) != 0 }
        fixture.expectRunning()
    }
}

/// Runs a command with /dev/null for stdin, stdout and stderr and no other of our
/// descriptors, and returns its exit status.
func spawnDetached(_ arguments: [String]) -> Int32 {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    for fd in Int32(0)...2 { posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0) }
    let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    for fd in open.compactMap(Int32.init) where fd > 2 && fcntl(fd, F_GETFD) >= 0 {
        posix_spawn_file_actions_addclose(&actions, fd)
    }
    var pid: pid_t = 0
    let argv = arguments.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    guard posix_spawnp(&pid, arguments[0], &actions, nil, argv, environ) == 0 else { return -1 }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
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
