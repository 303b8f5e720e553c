// Sampling over time: attach, run, stop signals, EINTR-free capture, idle elision.
import Foundation
import Glibc
import SwiftProf
import Testing

@Suite(.serialized)
struct AttachTests {
    /// One thread spends 3/4 of its time in hot_function, 1/4 in warm_function.
    @Test func theHotFunctionIsOnTopWithItsShare() throws {
        let fixture = try Fixture.c("hot", arguments: ["1", "2"])
        defer { fixture.stop() }
        let result = try swiftprof("attach", "--duration", "1.5s", "--rate", "200", "--format", "folded", "--thread-names", "\(fixture.pid)")
        #expect(result.status == 0, "\(result.stderr)")
        var hot = 0, warm = 0
        for line in result.stdout.split(separator: "\n") where line.hasPrefix("burner;") {
            let count = Int(line.split(separator: " ").last!)!
            if line.contains(";hot_function;") { hot += count }
            if line.contains(";warm_function;") { warm += count }
        }
        #expect(hot + warm > 150)
        let share = Double(hot) / Double(hot + warm)
        #expect(abs(share - 0.75) <= 0.10, "hot_function has \(hot) of \(hot + warm) samples")
        // On top: the running thread's most sampled stack (by name: the pcs within the loop vary).
        let top = result.stdout.split(separator: "\n").filter { $0.hasPrefix("burner;") }
            .max { Int($0.split(separator: " ").last!)! < Int($1.split(separator: " ").last!)! }
        #expect(top?.hasSuffix(";hot_function;spin_work \(hot)") == true)
        fixture.expectRunning()
    }

    /// Running threads come from the kernel's perf samples of them: each is stopped at
    /// most for its first tick (its event has no sample yet), not at every tick.
    @Test func runningThreadsAreSampledByTheKernelNotStopped() throws {
        let fixture = try Fixture.c("hot", arguments: ["2", "4"])
        defer { fixture.stop() }
        func paths(_ extra: [String]) throws -> [String: Int] {
            let result = try swiftprof(["attach", "--duration", "1s", "--rate", "100"] + extra + ["\(fixture.pid)"])
            #expect(result.status == 0, "\(result.stderr)")
            let profile = try parseProfile(result.stdout)
            #expect(profile.record(containing: "hot_function") != nil)
            if extra.contains("--no-perf"), SamplingTruthTests.realTimeAllowed {
                #expect(profile.comments.first?.hasSuffix("; ticks at real-time priority") == true, "\(profile.comments)")
            } else if extra.isEmpty {
                #expect(profile.comments.first?.contains("priority") == false, "\(profile.comments)")
            }
            let line = try #require(profile.comments.first { $0.hasPrefix("capture: ") })
            var counts: [String: Int] = [:]
            for part in line.dropFirst("capture: ".count).split(separator: ", ") {
                let words = part.split(separator: " ", maxSplits: 1)
                counts[String(words[1])] = Int(words[0])
            }
            return counts
        }
        let sampled = try paths([])
        #expect((sampled["sampled by the kernel"] ?? 0) >= 100, "\(sampled)")
        #expect((sampled["stopped"] ?? 0) < (sampled["sampled by the kernel"] ?? 0) / 10, "\(sampled)")
        let stopped = try paths(["--no-perf"])
        #expect(stopped["sampled by the kernel"] == nil, "\(stopped)")
        #expect((stopped["stopped"] ?? 0) >= 100, "\(stopped)")
        fixture.expectRunning()
    }

    /// --duration ending before the command does ends the command (SIGTERM) and waits
    /// for it; --keep-running leaves it running and says so (#17 item 3).
    @Test func runEndsTheCommandWhenTheDurationEnds() throws {
        let ended = try swiftprof("run", "--duration", "300ms", "--format", "folded", "--", "sleep", "30")
        #expect(ended.status == 0, "\(ended.stderr)")
        #expect(ended.stderr.hasSuffix("swiftprof: sleep was killed by signal 15\n"), "\(ended.stderr)")
        // The command kept running closes the descriptors it inherits beyond 0-2: the test's
        // process runner waits for one of them to close (a command run by swiftprof gets
        // every descriptor swiftprof has, as from a shell).
        let script = "import os, time; os.closerange(3, 65536); time.sleep(30)"
        let kept = try swiftprof("run", "--duration", "300ms", "--keep-running", "--format", "folded", "--", "python3", "-c", script)
        #expect(kept.status == 0, "\(kept.stderr)")
        let line = try #require(kept.stderr.split(separator: "\n").last, "\(kept.stderr)")
        #expect(line.hasPrefix("swiftprof: left running: python3 -c \(script) (pid "), "\(line)")
        let pid = try #require(Int32(line.split(separator: "pid ").last?.dropLast() ?? ""), "\(line)")
        #expect(kill(pid, 0) == 0, "the command was left running")
        kill(pid, SIGKILL)
    }

    /// SIGTERM sent to `run` reaches the command too.
    @Test func runPassesSIGTERMOnToTheCommand() throws {
        let run = try Streaming(Paths.swiftprof, ["run", "--progress", "--format", "folded", "--", "sleep", "30"])
        let line = try #require(run.readErrorLine())
        #expect(line.hasPrefix("swiftprof: "))
        kill(run.process.processIdentifier, SIGTERM)
        var lines: [String] = []
        while let next = run.readErrorLine() { lines.append(next) }
        let (status, _) = run.finish()
        #expect(status == 0, "\(lines)")
        #expect(lines.last == "swiftprof: sleep was killed by signal 15", "\(lines)")
    }

    /// A sampling run's counts are samples, and the formats that show counts say so
    /// (a dump's are threads).
    @Test func sampledCountsAreCalledSamples() throws {
        let fixture = try Fixture.c("hot", arguments: ["1", "1"])
        defer { fixture.stop() }
        func output(_ command: String, _ format: String) throws -> String {
            let extra = command == "attach" ? ["--duration", "500ms", "--rate", "100"] : []
            let result = try swiftprof([command] + extra + ["--format", format, "\(fixture.pid)"])
            #expect(result.status == 0, "\(result.stderr)")
            return result.stdout
        }
        let flame = try output("attach", "flamegraph")
        #expect(flame.contains("swiftprof attach \(fixture.pid): ") && flame.contains(" samples</text>"), "\(flame.prefix(3000))")
        #expect(!flame.contains(" threads"), "a sampled flame graph calls its counts threads")
        #expect(try output("attach", "layers").split(separator: "\n").first?.hasSuffix("SAMPLES") == true)
        #expect(try output("attach", "mermaid").contains(" samples\"|"))
        #expect(try output("dump", "layers").split(separator: "\n").first?.hasSuffix("THREADS") == true)
        #expect(try output("dump", "mermaid").contains(" threads\"|") || (try output("dump", "mermaid")).contains(" thread\"|"))
        fixture.expectRunning()
    }

    @Test func runProfilesACommandToItsExit() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftprof-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("run.txt").path
        let result = try swiftprof("run", "--rate", "200", "-o", file, "--", try FixtureBuild.executable("hot"), "1", "0", "600")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.hasSuffix("swiftprof: \(try FixtureBuild.executable("hot")) exited with status 0\n"))
        let profile = try parseProfile(try String(contentsOfFile: file, encoding: .utf8))
        #expect(profile.record(containing: "hot_function") != nil)
        #expect(profile.comments.first?.hasPrefix("samples: ") == true)
    }

    /// A thread's name follows the target (#18 item 6): the samples after a rename
    /// (prctl) carry the new name, and a wrapper that execs gives its name to no
    /// sample after the exec. Names are cached between the kernel's records of a
    /// rename, so this fails if a record is missed.
    @Test func namesFollowRenamesAndExec() throws {
        let fixture = try Fixture.c("renamed")
        defer { fixture.stop() }
        let attach = try Streaming(Paths.swiftprof, ["attach", "--progress", "--format", "folded", "--thread-names", "\(fixture.pid)"])
        _ = try #require(attach.readErrorLine())  // sampling under way: "before" captured
        #expect(fixture.ask("rename") == "renamed")
        _ = try #require(attach.readErrorLine())  // a report later: ticks since the rename
        _ = try #require(attach.readErrorLine())
        kill(attach.process.processIdentifier, SIGINT)
        let (status, folded) = attach.finish()
        #expect(status == 0)
        let lines = folded.split(separator: "\n")
        #expect(lines.contains { $0.hasPrefix("before;") && $0.contains(";wait_before") }, "\(folded)")
        #expect(lines.contains { $0.hasPrefix("after;") && $0.contains(";wait_after") }, "\(folded)")
        #expect(!lines.contains { $0.hasPrefix("before;") && $0.contains(";wait_after") }, "\(folded)")

        // --threads follows names too: chosen once renamed into the pattern.
        let second = try Fixture.c("renamed")
        defer { second.stop() }
        let chosen = try Streaming(Paths.swiftprof, ["attach", "--progress", "--threads", "aft*", "--format", "folded",
                                                     "--thread-names", "\(second.pid)"])
        _ = try #require(chosen.readErrorLine())
        #expect(second.ask("rename") == "renamed")
        _ = try #require(chosen.readErrorLine())
        _ = try #require(chosen.readErrorLine())
        kill(chosen.process.processIdentifier, SIGINT)
        let (chosenStatus, chosenFolded) = chosen.finish()
        #expect(chosenStatus == 0)
        let chosenLines = chosenFolded.split(separator: "\n")
        #expect(!chosenLines.isEmpty && chosenLines.allSatisfy { $0.hasPrefix("after;") && $0.contains(";wait_after") },
                "\(chosenFolded)")

        // The shell execs the fixture: its main thread is "hot" from then on.
        let hot = try FixtureBuild.executable("hot")
        let run = try swiftprof("run", "--rate", "100", "--format", "folded", "--thread-names", "--", "/bin/sh", "-c",
                                "exec \(hot) 1 0 500")
        #expect(run.status == 0, "\(run.stderr)")
        let counts = run.stdout.split(separator: "\n").map { line in
            (name: String(line.prefix { $0 != ";" }), count: Int(line.split(separator: " ").last ?? "") ?? 0)
        }
        let mainThread = counts.filter { $0.name == "hot" }.reduce(0) { $0 + $1.count }
        let shell = counts.filter { $0.name == "sh" }.reduce(0) { $0 + $1.count }
        // The exec comes a few ms after the start: at most the first tick or two see the shell.
        #expect(mainThread >= 20 && shell <= 2, "\(run.stdout)")
    }

    @Test(arguments: [SIGINT, SIGTERM])
    func aStopSignalPrintsTheProfileAndLeavesTheTargetRunning(_ signal: Int32) throws {
        let fixture = try Fixture.c("parked")
        defer { fixture.stop() }
        let attach = try Streaming(Paths.swiftprof, ["attach", "--progress", "\(fixture.pid)"])
        // The first progress line says sampling is under way.
        let line = try #require(attach.readErrorLine())
        #expect(line.hasPrefix("swiftprof: "))
        kill(attach.process.processIdentifier, signal)
        let (status, stdout) = attach.finish()
        #expect(status == 0)
        let profile = try parseProfile(stdout)
        #expect(profile.records.reduce(0) { $0 + $1.count } >= 12)
        #expect(profile.record(containing: "worker_wait") != nil)
        fixture.expectRunning()
        #expect(try swiftprof("dump", "\(fixture.pid)").status == 0)  // not held: another tracer can attach
    }

    /// A ptrace stop makes epoll_wait return EINTR; the default capture never stops a blocked thread.
    @Test func blockedThreadsSeeNoEINTR() throws {
        let fixture = try Fixture.c("eintr")
        defer { fixture.stop() }
        #expect(fixture.ask("report") == "eintr 0")
        #expect(try swiftprof("dump", "\(fixture.pid)").status == 0)
        #expect(fixture.ask("report") == "eintr 0")
        #expect(try swiftprof("attach", "--duration", "0.5s", "--rate", "200", "\(fixture.pid)").status == 0)
        #expect(fixture.ask("report") == "eintr 0")
        // The fixture does see them when there are some: a consistent dump stops everything.
        #expect(try swiftprof("dump", "--consistent", "\(fixture.pid)").status == 0)
        let after = try #require(fixture.ask("report"))
        #expect(after.hasPrefix("eintr ") && after != "eintr 0")
    }

    /// Threads that have not run since the last sample are captured once and then reused.
    @Test func idleThreadsAreCapturedOnce() throws {
        let fixture = try Fixture.c("parked")
        defer { fixture.stop() }
        let result = try swiftprof("attach", "--duration", "0.5s", "--rate", "100", "--stats", "--format", "folded", "\(fixture.pid)")
        #expect(result.status == 0)
        let stats = try #require(result.stderr.split(separator: "\n").last { $0.contains(" samples, ") })
        // "swiftprof: 50 samples, 0 lost; captures: 539 reused, 11 without stop, 48 sampled by the kernel, 2 stopped"
        let samples = try #require(Int(stats.dropFirst("swiftprof: ".count).prefix { $0.isNumber }))
        var paths: [String: Int] = [:]
        for part in stats.split(separator: ";").last!.dropFirst(" captures: ".count).split(separator: ", ") {
            let words = part.split(separator: " ", maxSplits: 1)
            paths[String(words[1])] = Int(words[0])
        }
        // Every thread once a tick, the 11 blocked ones copied once and then reused; the
        // spinner sampled by the kernel while on a CPU, or copied where it was preempted
        // (2 cores: the test and swiftprof take turns with it), so "without stop" may
        // hold a few of its ticks too, and a preempted spinner may even be reused.
        let captures = ["reused", "without stop", "sampled by the kernel", "stopped"].reduce(0) { $0 + (paths[$1] ?? 0) }
        #expect(captures == 12 * samples, "\(stats)")
        #expect((paths["reused"] ?? 0) >= 11 * (samples - 1), "\(stats)")
        #expect((paths["without stop"] ?? 0) >= 11, "\(stats)")
        #expect((paths["sampled by the kernel"] ?? 0) + (paths["stopped"] ?? 0) >= samples / 2, "\(stats)")
        // Whatever the path, the spinner is in its loop at every tick.
        let spinner = result.stdout.split(separator: "\n").filter { $0.contains("spin_forever") }
        #expect(spinner.reduce(0) { $0 + (Int($1.split(separator: " ").last ?? "") ?? 0) } == samples, "\(result.stdout)")
    }
}

/// A command whose stderr is read line by line while it runs.
final class Streaming: @unchecked Sendable {
    let process = Process()
    private let errors = Pipe()
    private let output: URL

    init(_ executable: String, _ arguments: [String]) throws {
        output = FileManager.default.temporaryDirectory.appendingPathComponent("swiftprof-stream-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = try FileHandle(forWritingTo: output)
        process.standardError = errors
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    func readErrorLine() -> String? { Fixture.readLine(errors.fileHandleForReading) }

    func finish() -> (Int32, String) {
        process.waitUntilExit()
        let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(at: output)
        return (process.terminationStatus, text)
    }
}
