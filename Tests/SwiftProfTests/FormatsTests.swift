// Every output format, checked by the tools that read it: go tool pprof,
// speedscope's published schema, an XML parser, and swiftprof's own readers.
import Foundation
import SwiftProf
import Testing

@Suite(.serialized)
struct FormatsTests {
    static let source = "Fixtures/c/parked.c"

    /// A scratch directory for one test's files.
    static func scratch() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftprof-formats-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    static let goEnvironment = ["HOME": NSTemporaryDirectory(), "PATH": "/usr/lib/go/bin:/usr/bin:/bin", "PPROF_TMPDIR": NSTemporaryDirectory()]

    @Test func goPprofReadsTheProtobufWithoutTheBinaries() throws {
        let fixture = try Fixture.c("parked")
        defer { fixture.stop() }
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("parked.pb.gz").path
        #expect(try swiftprof("dump", "--format", "pprof", "-o", file, "\(fixture.pid)").status == 0)
        fixture.stop()  // the profile must stand alone: the process is gone

        let traces = try run("go", ["tool", "pprof", "-traces", "-lines", file], environment: Self.goEnvironment)
        #expect(traces.status == 0, "\(traces.stderr)")
        #expect(traces.stdout.contains("worker_wait \(Paths.packageRoot.path)/\(Self.source):\(sourceLine(Self.source, containing: "pthread_cond_wait(&never, &lock)"))"))
        #expect(traces.stdout.contains("read_byte \(Paths.packageRoot.path)/\(Self.source):\(sourceLine(Self.source, containing: "return read(fd, byte, 1);"))"))
        #expect(traces.stdout.contains("syscall:  futex"))  // state labels
        let top = try run("go", ["tool", "pprof", "-top", "-tagfocus", "syscall=futex", file], environment: Self.goEnvironment)
        #expect(top.status == 0, "\(top.stderr)")
        #expect(top.stdout.contains("Showing nodes accounting for 8, 66.67% of 12 total"))

        // Read back: the same stacks and states as the text of the same capture.
        let back = try swiftprof("dump", "--input", file)
        #expect(back.status == 0, "\(back.stderr)")
        let profile = try parseProfile(back.stdout)
        #expect(profile.record(containing: "worker_wait")?.count == 8)
        #expect(profile.record(containing: "worker_wait")?.state?.systemCall?.name == "futex")
    }

    /// A sampled run's protobuf says what was sampled, as serve's and Go's CPU profile
    /// do: samples/count and wall (or cpu) in nanoseconds, the period, the duration;
    /// not "Type: thread", which is a snapshot's. Read back, it has the same stacks.
    @Test func aSampledRunsProtobufSaysWhatWasSampled() throws {
        let fixture = try Fixture.c("hot")
        defer { fixture.stop() }
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        for mode in ["wall", "cpu"] {
            let file = directory.appendingPathComponent("\(mode).pb.gz").path
            let result = try swiftprof("attach", "\(fixture.pid)", "--mode", mode, "--rate", "100", "--duration", "1s", "--format", "pprof", "-o", file)
            #expect(result.status == 0, "\(result.stderr)")
            let top = try run("go", ["tool", "pprof", "-top", file], environment: Self.goEnvironment)
            #expect(top.stdout.contains("Type: \(mode)") && top.stdout.contains("Duration: 1"), "\(top.stdout)\(top.stderr)")
            // Samples of 10 ms each: the total is in seconds, about a second a busy thread.
            #expect(top.stdout.contains("Total samples = ") && top.stdout.contains("s ("), "\(top.stdout)")
            let back = try swiftprof("dump", "--input", file)
            #expect(back.status == 0 && back.stdout.contains("hot_function"), "\(back.stdout)\(back.stderr)")
        }
        fixture.expectRunning()
    }

    /// A program started through a link (Debian's redis-server is a link to
    /// redis-check-rdb) is named by the link, as ps names it, not by the file the link
    /// leads to, which /proc/PID/maps gives (#31): go tool pprof's "File:" line.
    @Test func aProgramStartedThroughALinkIsNamedByIt() throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let real = directory.appendingPathComponent("parked-real").path, link = directory.appendingPathComponent("parked-link").path
        try FileManager.default.copyItem(atPath: try FixtureBuild.executable("parked"), toPath: real)
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "parked-real")
        let fixture = try Fixture(link)
        defer { fixture.stop() }
        let file = directory.appendingPathComponent("linked.pb.gz").path
        #expect(try swiftprof("dump", "--format", "pprof", "-o", file, "\(fixture.pid)").status == 0)
        let top = try run("go", ["tool", "pprof", "-top", file], environment: Self.goEnvironment)
        #expect(top.stdout.contains("File: parked-link\n"), "\(top.stdout)\(top.stderr)")
        // The memory map says the same path, which opens the same file.
        let text = try swiftprof("dump", "--memory-map", "\(fixture.pid)").stdout
        #expect(text.contains(" \(link)\n") && !text.contains(" \(real)\n"), "\(text)")
    }

    @Test func speedscopeValidatesAgainstItsSchema() throws {
        let fixture = try Fixture.c("parked")
        defer { fixture.stop() }
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let perThread = directory.appendingPathComponent("threads.json").path
        let merged = directory.appendingPathComponent("merged.json").path
        #expect(try swiftprof("dump", "--format", "speedscope", "-o", perThread, "\(fixture.pid)").status == 0)
        #expect(try swiftprof("dump", "--format", "speedscope", "--merge-threads", "-o", merged, "\(fixture.pid)").status == 0)
        let schema = Paths.packageRoot.appendingPathComponent("Fixtures/schemas/speedscope-file-format-schema.json").path
        for (file, profiles) in [(perThread, 12), (merged, 1)] {
            let check = try run("python3", ["-c", """
                import json, sys, jsonschema
                document = json.load(open(sys.argv[2]))
                jsonschema.validate(document, json.load(open(sys.argv[1])))
                frames = document["shared"]["frames"]
                assert all(0 <= i < len(frames) for p in document["profiles"] for s in p["samples"] for i in s)
                print(len(document["profiles"]), sum(sum(p["weights"]) for p in document["profiles"]))
                """, schema, file])
            #expect(check.status == 0, "\(check.stderr)")
            #expect(check.stdout == "\(profiles) 12\n")
        }
    }

    @Test func flameGraphIsWellFormedSVGWithOneElementPerFrame() throws {
        let fixture = try Fixture.c("parked")
        defer { fixture.stop() }
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let svg = directory.appendingPathComponent("parked.svg").path
        // Both from one capture: a second one could differ (a call restarted after the first stop).
        let capture = directory.appendingPathComponent("parked.json").path
        #expect(try swiftprof("dump", "--format", "json", "-o", capture, "\(fixture.pid)").status == 0)
        let folded = try swiftprof("dump", "--input", capture, "--format", "folded").stdout
        #expect(try swiftprof("dump", "--input", capture, "--format", "flamegraph", "-o", svg).status == 0)
        // Every distinct path prefix of the folded stacks is one box, plus the root "all".
        var prefixes: Set<String> = []
        for line in folded.split(separator: "\n") {
            let frames = line.split(separator: " ").dropLast().joined(separator: " ").split(separator: ";")
            for end in 1...frames.count { prefixes.insert(frames.prefix(end).joined(separator: ";")) }
        }
        let check = try run("python3", ["-c", """
            import sys, xml.etree.ElementTree as ET
            root = ET.parse(sys.argv[1]).getroot()
            ns = "{http://www.w3.org/2000/svg}"
            frames = [g for g in root.iter(ns + "g") if g.get("class") == "frame"]
            assert all(g.find(ns + "rect") is not None and g.find(ns + "title") is not None for g in frames)
            assert root.find(ns + "script") is not None
            print(len(frames), frames[0].find(ns + "title").text)
            """, svg])
        #expect(check.status == 0, "\(check.stderr)")
        #expect(check.stdout == "\(prefixes.count + 1) all (12 threads, 100.0%)\n")
        // Coloured by layer: warm for the program, blue for the runtime, violet for the kernel.
        let text = try String(contentsOfFile: svg, encoding: .utf8)
        func fill(_ name: String) -> [Int]? {
            guard let frame = text.components(separatedBy: "\n").first(where: { $0.contains("data-n=\"\(name)\"") }),
                  let start = frame.range(of: "fill=\"rgb("), let end = frame[start.upperBound...].firstIndex(of: ")") else { return nil }
            return frame[start.upperBound..<end].split(separator: ",").compactMap { Int($0) }
        }
        let app = try #require(fill("worker_wait")), runtime = try #require(fill("start_thread"))
        #expect(app[0] >= 205 && app[2] <= 40)
        #expect(runtime[2] >= 200 && runtime[0] <= 140)
        if LayersTests.kernelStacksReadable {
            let kernel = try #require(fill("do_epoll_wait"))
            #expect(kernel[0] >= 180 && kernel[2] >= 160)
        }
    }

    @Test func textToJSONToTextIsByteIdentical() throws {
        for fixtureName in ["parked", "kvserver"] {
            let fixture = try Fixture.c(fixtureName)
            defer { fixture.stop() }
            let directory = try Self.scratch()
            defer { try? FileManager.default.removeItem(at: directory) }
            let text = directory.appendingPathComponent("a.txt").path
            let json = directory.appendingPathComponent("a.json").path
            #expect(try swiftprof("dump", "--memory-map", "-o", text, "\(fixture.pid)").status == 0)
            #expect(try swiftprof("dump", "--input", text, "--format", "json", "-o", json).status == 0)
            let again = try swiftprof("dump", "--input", json, "--memory-map")
            #expect(again.status == 0, "\(again.stderr)")
            #expect(again.stdout == (try String(contentsOfFile: text, encoding: .utf8)))

            // A live JSON dump is valid against the documented schema, threads and all.
            let live = directory.appendingPathComponent("live.json").path
            #expect(try swiftprof("dump", "--format", "json", "-o", live, "\(fixture.pid)").status == 0)
            let schema = Paths.packageRoot.appendingPathComponent("Fixtures/schemas/swiftprof-profile-1.schema.json").path
            for file in [json, live] {
                let check = try run("python3", ["-c", "import json, sys, jsonschema; jsonschema.validate(json.load(open(sys.argv[2])), json.load(open(sys.argv[1])))", schema, file])
                #expect(check.status == 0, "\(file): \(check.stderr)")
            }
        }
    }

    @Test func tracebackShowsEveryThread() throws {
        let fixture = try Fixture.c("parked")
        defer { fixture.stop() }
        let result = try swiftprof("dump", "--format", "traceback", "--no-kernel", "\(fixture.pid)")
        #expect(result.status == 0)
        let blocks = result.stdout.components(separatedBy: "\n\n")
        #expect(blocks.count == 12)
        let workers = blocks.filter { $0.contains("\"worker\" [sleeping, futex, waiting for condition variable never]:\n") }
        #expect(workers.count == 8)
        let line = sourceLine(Self.source, containing: "pthread_cond_wait(&never, &lock)")
        #expect(workers.allSatisfy { $0.contains("\nworker_wait(...)\n\t\(Paths.packageRoot.path)/\(Self.source):\(line) +0x") })
        #expect(blocks.first?.hasPrefix("thread \(fixture.pid) \"parked\" [sleeping, read]:\n__GI___libc_read(...)\n") == true)
    }

    @Test func foldedStacksForFlameGraphTools() throws {
        let fixture = try Fixture.c("parked")
        defer { fixture.stop() }
        let folded = try swiftprof("dump", "--format", "folded", "\(fixture.pid)").stdout
        let lines = folded.split(separator: "\n").map(String.init)
        #expect(lines == lines.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
        #expect(lines.map { Int($0.split(separator: " ").last!)! }.reduce(0, +) == 12)
        #expect(lines.contains { $0.hasPrefix("__clone3;start_thread;worker;worker_wait;___pthread_cond_wait;") && $0.hasSuffix(" 8") })
        #expect(lines.contains("_start;__libc_start_main_impl;__libc_start_call_main;main;wait_for_eof;read_byte;__GI___libc_read;__GI___libc_read"
                               + (LayersTests.kernelStacksReadable ? ";entry_SYSCALL_64_after_hwframe_[k];do_syscall_64_[k];ksys_read_[k];vfs_read_[k];anon_pipe_read_[k] 1" : " 1")))
        let named = try swiftprof("dump", "--format", "folded", "--thread-names", "\(fixture.pid)").stdout
        #expect(named.split(separator: "\n").contains { $0.hasPrefix("worker;__clone3;") && $0.hasSuffix(" 8") })
        #expect(named.split(separator: "\n").contains { $0.hasPrefix("spinner;__clone3;start_thread;spinner;spin_forever") })
    }

    @Test func diffRanksWhatChanged() throws {
        let parked = try Fixture.c("parked"), server = try Fixture.c("kvserver")
        defer { parked.stop(); server.stop() }
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let before = directory.appendingPathComponent("before.txt").path
        let after = directory.appendingPathComponent("after.pb.gz").path
        #expect(try swiftprof("dump", "-o", before, "\(parked.pid)").status == 0)
        #expect(try swiftprof("dump", "--format", "pprof", "-o", after, "\(server.pid)").status == 0)

        let same = try swiftprof("diff", before, before)
        #expect(same.status == 0)
        #expect(same.stdout == "thread diff: before total 12, after total 12 (+0)\n0 stacks changed\n\n")

        // As diff(1): 1 when something changed.
        let diff = try swiftprof("diff", before, after)
        #expect(diff.status == 1, "\(diff.stderr)")
        #expect(diff.stdout.hasPrefix("thread diff: before total 12, after total 6 (-6)\n11 stacks changed\n\n-8 (8 -> 0) vanished\n"))
        #expect(diff.stdout.contains("\n+1 (0 -> 1) appeared\n"))
        #expect(diff.stdout.contains("#\taccept_connection\t"))

        let delta = directory.appendingPathComponent("delta.pb.gz").path
        #expect(try swiftprof("diff", "--format", "pprof", "-o", delta, before, after).status == 1)
        let top = try run("go", ["tool", "pprof", "-top", delta], environment: Self.goEnvironment)
        #expect(top.status == 0, "\(top.stderr)")
        #expect(top.stdout.contains("worker_wait"))
        let beforeProto = directory.appendingPathComponent("before.pb.gz").path
        #expect(try swiftprof("dump", "--input", before, "--format", "pprof", "-o", beforeProto).status == 0)
        let based = try run("go", ["tool", "pprof", "-top", "-diff_base", beforeProto, after], environment: Self.goEnvironment)
        #expect(based.status == 0, "\(based.stderr)")
        #expect(based.stdout.contains("accept_connection"))
    }

    @Test func badInputFilesGetTheirOwnStatus() throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let missing = directory.appendingPathComponent("missing.txt").path
        let result = try swiftprof("dump", "--input", missing)
        #expect(result.status == 66)
        #expect(result.stderr == "swiftprof: cannot read \(missing): No such file or directory\n")

        let broken = directory.appendingPathComponent("broken.txt").path
        try "thread profile: total 1\n1 @ 0x2\n#\t0x1\tf+0x0\tf.c:1\nnot a record\n".write(toFile: broken, atomically: true, encoding: .utf8)
        let malformed = try swiftprof("dump", "--input", broken)
        #expect(malformed.status == 65)
        #expect(malformed.stderr == "swiftprof: \(broken): line 4: expected \"N @ 0x...\"\n")
        #expect(try swiftprof("diff", broken, broken).status == 65)

        let json = directory.appendingPathComponent("broken.json").path
        try "{\"schema\": \"swiftprof-profile/1\",\n \"profile\": 3}".write(toFile: json, atomically: true, encoding: .utf8)
        let badJSON = try swiftprof("dump", "--input", json)
        #expect(badJSON.status == 65)
        #expect(badJSON.stderr.hasPrefix("swiftprof: \(json): line "))
        #expect(try swiftprof("dump", "--input", directory.path).status == 66)
        #expect(try swiftprof("dump", "1", "--input", broken).status == 64)
    }
}
