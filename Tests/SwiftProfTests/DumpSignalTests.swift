// The target's own job control survives a dump.
import Glibc
import Testing

@Suite(.serialized)
struct DumpSignalTests {
    /// A process stopped with SIGSTOP is captured in full and stays stopped
    /// after the detach; SIGCONT then resumes it as if nothing happened.
    @Test func stoppedProcessStaysStopped() throws {
        let fixture = try Fixture.c("parked")
        defer { kill(fixture.pid, SIGCONT); fixture.stop() }
        kill(fixture.pid, SIGSTOP)
        try waitUntil { fixture.threadStates().allSatisfy { $0 == "T" } }
        let result = try swiftprof("dump", "\(fixture.pid)")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix("thread profile: total 12\n"))
        #expect(result.stderr == "swiftprof: process \(fixture.pid) was stopped by a signal before the capture and stays stopped\n")
        #expect(fixture.threadStates().allSatisfy { $0 == "T" })
        kill(fixture.pid, SIGCONT)
        try waitUntil { !fixture.threadStates().contains("T") }
        // It runs again: it still answers on its pipe.
        fixture.expectRunning()
        #expect(try swiftprof("dump", "\(fixture.pid)").stderr.isEmpty)
    }
}

/// Polls a condition the kernel makes true asynchronously (a signal's effect on
/// /proc), yielding between checks; fails after `limit` seconds.
func waitUntil(limit: Double = 10, _ condition: () -> Bool) throws {
    var start = timespec()
    clock_gettime(CLOCK_MONOTONIC, &start)
    while !condition() {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        if Double(now.tv_sec - start.tv_sec) > limit {
            Issue.record("condition not met within \(limit) s")
            return
        }
        sched_yield()
    }
}
