// The exit status table (README "Exit status", the man page's EXIT STATUS): the rows
// not checked where their feature is (65/66 in FormatsTests, 73/74 in OutputFileTests,
// 1 for a partial capture in DumpErrorTests and DumpTasksTests, 3 for a deadlock in
// DeadlockTests).
import Foundation
import Testing

@Suite(.serialized) struct ExitStatusTests {
    @Test func aCompleteSnapshotIsZeroAndNoSuchProcessIsTwo() throws {
        let fixture = try Fixture.c("parked")
        defer { fixture.stop() }
        #expect(try swiftprof("dump", "\(fixture.pid)").status == 0)
        // A pid past pid_max is never a process.
        let gone = try swiftprof("dump", "4194305")
        #expect(gone.status == 2)
        #expect(gone.stderr.hasPrefix("swiftprof: "), "\(gone.stderr)")
    }

    @Test func badUsageIs64() throws {
        #expect(try swiftprof("dump").status == 64)
        #expect(try swiftprof("attach", "1", "--rate", "0").status == 64)
        #expect(try swiftprof("dump", "--fail-on-deadlock", "--goroutines", "1").status == 64)
    }

    /// A command that ends before the first tick gives an empty profile, and the status
    /// does not depend on whether it lived long enough for a sample.
    @Test func runOfACommandThatFailsAtOnceIsAlwaysZero() throws {
        for _ in 0..<5 {
            let result = try swiftprof("run", "--", "false")
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.hasPrefix("thread profile: total "), "\(result.stdout)")
            #expect(result.stderr.contains("false exited with status 1"), "\(result.stderr)")
        }
    }

    /// As a shell says it: 127 for a command that is not there, 126 for one that cannot run.
    @Test func runOfACommandThatCannotStartIs127Or126() throws {
        let missing = try swiftprof("run", "--", "/nonexistent/cmd")
        #expect(missing.status == 127)
        #expect(missing.stdout.isEmpty)
        #expect(missing.stderr == "swiftprof: cannot run /nonexistent/cmd: No such file or directory\n")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftprof-exit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let notExecutable = directory.appendingPathComponent("script").path
        try "echo hi\n".write(toFile: notExecutable, atomically: true, encoding: .utf8)
        let refused = try swiftprof("run", "--", notExecutable)
        #expect(refused.status == 126, "\(refused.stderr)")
        #expect(refused.stdout.isEmpty)
    }

    /// As diff(1): 0 when nothing changed, 1 when something did.
    @Test func diffSaysWhetherAnythingChanged() throws {
        let parked = try Fixture.c("parked")
        let server = try Fixture.c("kvserver")
        defer { parked.stop(); server.stop() }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftprof-exit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let before = directory.appendingPathComponent("before.txt").path, after = directory.appendingPathComponent("after.txt").path
        #expect(try swiftprof("dump", "-o", before, "\(parked.pid)").status == 0)
        #expect(try swiftprof("dump", "-o", after, "\(server.pid)").status == 0)
        #expect(try swiftprof("diff", before, before).status == 0)
        #expect(try swiftprof("diff", before, after).status == 1)
    }
}
