// Several processes in one snapshot (Fixtures/c/tree.c: a parent and its
// children, each with threads parked in functions of its own kind): chosen by
// PIDs, --children, --name (a name only this test's copy of the fixture has),
// --cgroup (a cgroup of the test's own) and --all (inside a PID namespace of the
// test's own, never on the machine's processes). Each process's frames are checked
// against eu-stack's for that pid.
import Foundation
import SwiftProf
import Testing

@Suite(.serialized) struct ManyProcessTests {
    /// The tree fixture with `children` children: its pids, parent first.
    private static func tree(_ children: Int = 3, executable: String? = nil) throws -> (Fixture, [Int32]) {
        let fixture = try Fixture(try executable ?? FixtureBuild.executable("tree"), arguments: ["\(children)"])
        let pids = fixture.readyWords.compactMap { Int32($0) }
        try #require(pids.count == children + 1 && pids[0] == fixture.pid, "\(fixture.readyWords)")
        return (fixture, pids)
    }

    /// The user functions of each thread, leaf first, by process, from a pprof-text dump.
    private static func stacksByProcess(_ profile: PprofTextProfile) -> [Int32: [String]] {
        var stacks: [Int32: [String]] = [:]
        for record in profile.records {
            for process in record.processes {
                // A record of one process counts its threads; a merged one, each process's share is one a thread.
                let copies = record.processes.count == 1 ? record.count : record.threadIDs.count / record.processes.count
                stacks[process.pid, default: []] += Array(repeating: record.userFunctions.joined(separator: " < "), count: copies)
            }
        }
        return stacks.mapValues { $0.sorted() }
    }

    private static func euStack(_ pid: Int32) throws -> [String] {
        let theirs = try run("eu-stack", ["-i", "-s", "-p", "\(pid)"])
        #expect(theirs.status == 0, "eu-stack: \(theirs.stderr)")
        return EuStack.functionsPerThread(theirs.stdout).map { $0.joined(separator: " < ") }.sorted()
    }

    @Test func childrenDumpsTheWholeTreeEachProcessAsEuStackSeesIt() throws {
        let (fixture, pids) = try Self.tree()
        defer { fixture.stop() }
        let result = try swiftprof("dump", "--children", "\(fixture.pid)")
        #expect(result.status == 0, "\(result.stderr)")
        let profile = try parseProfile(result.stdout)
        // Every record is one process's: grouped by process, never across.
        #expect(profile.records.allSatisfy { $0.processes.count == 1 }, "\(result.stdout)")
        let stacks = Self.stacksByProcess(profile)
        #expect(Set(stacks.keys) == Set(pids), "\(result.stdout)")
        for pid in pids { #expect(stacks[pid] == (try Self.euStack(pid)), "process \(pid):\n\(result.stdout)") }
        // Each named as ps names it: the parent's argv, each child's rewritten one.
        let commands = Dictionary(profile.records.flatMap(\.processes).map { ($0.pid, $0.commandLine) }, uniquingKeysWith: { a, _ in a })
        #expect(commands[pids[0]]?.hasSuffix("/tree 3") == true, "\(commands)")
        for (index, child) in pids.dropFirst().enumerated() { #expect(commands[child] == "tree: child \(index + 1)", "\(commands)") }
        #expect(profile.records.contains { $0.processes.first?.pid == pids[0] && $0.functions.contains("parent_nap") })
        #expect(result.stdout.contains("\n# capture: 4 processes, 11 threads: "), "\(result.stdout)")
        for pid in pids { #expect(Self.isRunning(pid), "process \(pid) left stopped") }
    }

    @Test func severalPIDsAndMergedProcesses() throws {
        let (fixture, pids) = try Self.tree()
        defer { fixture.stop() }
        let (first, second) = (pids[1], pids[2])
        let apart = try parseProfile(try swiftprof("dump", "\(first)", "\(second)").stdout)
        #expect(Set(apart.records.flatMap(\.processes).map(\.pid)) == [first, second])
        #expect(apart.records.count == 6 && apart.records.allSatisfy { $0.count == 1 })
        // Merged: each of a child's three stacks once, for both children.
        let merged = try swiftprof("dump", "--merge-processes", "\(first)", "\(second)")
        let profile = try parseProfile(merged.stdout)
        #expect(profile.records.count == 3, "\(merged.stdout)")
        for record in profile.records {
            #expect(record.count == 2 && record.processes.map(\.pid) == [first, second], "\(merged.stdout)")
        }
        #expect(merged.stdout.contains("\n# processes: \(first) \"tree: child 1\", \(second) \"tree: child 2\"\n"), "\(merged.stdout)")
        // Read back, converted, the same records.
        let saved = FileManager.default.temporaryDirectory.appendingPathComponent("merged-\(getpid()).txt").path
        defer { try? FileManager.default.removeItem(atPath: saved) }
        try merged.stdout.write(toFile: saved, atomically: true, encoding: .utf8)
        #expect(try parseProfile(try swiftprof("dump", "--input", saved).stdout).records == profile.records)
    }

    /// --name: only processes of that name, by comm or the executable's base name
    /// (a copy of the fixture under a name no other process has).
    @Test func nameMatchesTheProcessesOfThatName() throws {
        let unique = "sptree\(getpid())"
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftprof-name-\(getpid())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let copy = directory + "/" + unique
        try FileManager.default.copyItem(atPath: try FixtureBuild.executable("tree"), toPath: copy)
        let (fixture, pids) = try Self.tree(2, executable: copy)
        defer { fixture.stop() }
        let result = try swiftprof("dump", "--name", unique, "--format", "folded", "--no-kernel")
        #expect(result.status == 0, "\(result.stderr)")
        // The process as the root of each stack: what ps shows and the pid.
        let roots = Set(result.stdout.split(separator: "\n").compactMap { $0.split(separator: ";").first.map(String.init) })
        #expect(roots == ["\(copy) 2 (\(pids[0]))", "tree: child 1 (\(pids[1]))", "tree: child 2 (\(pids[2]))"], "\(result.stdout)")
        let glob = try swiftprof("dump", "--name", "sptree\(getpid())*", "--format", "json")
        #expect(glob.status == 0, "\(glob.stderr)")
        let none = try swiftprof("dump", "--name", unique + "-none")
        #expect(none.status == 2 && none.stderr.contains("no process to profile"), "\(none.stderr)")
    }

    /// --all sees every process of its PID namespace: run inside the fixture's own.
    @Test func allInsideAPIDNamespaceOfItsOwn() throws {
        let fixture = try Fixture("/usr/bin/unshare", arguments: ["--pid", "--fork", "--mount-proc", "--kill-child",
                                                                   try FixtureBuild.executable("tree"), "2"])
        defer { fixture.stop() }
        // The tree's pids as it sees them (1 for the namespace's first process), and its pid on the host.
        let inside = fixture.readyWords.compactMap { Int32($0) }
        try #require(inside.count == 3 && inside[0] == 1, "\(fixture.readyWords)")
        let children = (try? String(contentsOfFile: "/proc/\(fixture.pid)/task/\(fixture.pid)/children", encoding: .utf8)) ?? ""
        let host = try #require(Int32(children.trimmingCharacters(in: .whitespaces)), "unshare's child: \(children)")
        let result = try run("nsenter", ["--target", "\(host)", "--pid", "--mount", Paths.swiftprof, "dump", "--all"])
        #expect(result.status == 0, "\(result.stderr)")
        let profile = try parseProfile(result.stdout)
        #expect(Set(profile.records.flatMap(\.processes).map(\.pid)) == Set(inside), "\(result.stdout)")
        #expect(profile.records.allSatisfy { !$0.functions.contains { $0.contains("SwiftProf") } }, "swiftprof listed itself")
        // From the host: the host's pids, and the pid each sees itself by.
        let outside = try parseProfile(try swiftprof("dump", "--children", "\(host)").stdout)
        let processes = Set(outside.records.flatMap(\.processes))
        #expect(processes.first { $0.pid == host }?.namespacePID == 1, "\(processes)")
        #expect(Set(processes.compactMap(\.namespacePID)) == Set(inside), "\(processes)")
    }

    /// --cgroup: the processes of a cgroup v2 directory made for the test.
    @Test func cgroupListsItsProcesses() throws {
        let mount = try #require(ProcessSelectionProbe.cgroup2Mount(), "no cgroup2 mount on this machine")
        let (fixture, pids) = try Self.tree(2)
        defer { fixture.stop() }
        let name = "swiftprof-test-\(getpid())"
        let directory = mount + "/" + name
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        defer {
            // Emptied first: a cgroup is removed only once its processes are elsewhere or gone.
            for pid in pids { try? "\(pid)\n".write(toFile: mount + "/cgroup.procs", atomically: false, encoding: .utf8) }
            rmdir(directory)
        }
        for pid in pids.dropFirst() { try "\(pid)\n".write(toFile: directory + "/cgroup.procs", atomically: false, encoding: .utf8) }
        for cgroupPath in [name, directory] {
            let result = try swiftprof("dump", "--cgroup", cgroupPath)
            #expect(result.status == 0, "\(result.stderr)")
            let profile = try parseProfile(result.stdout)
            #expect(Set(profile.records.flatMap(\.processes).map(\.pid)) == Set(pids.dropFirst()), "\(result.stdout)")
        }
        let missing = try swiftprof("dump", "--cgroup", name + "-none")
        #expect(missing.status == 2, "\(missing.stderr)")
    }

    /// A tree whose executable is on a tmpfs mounted in its own mount namespace: the
    /// host sees no file at that path, and each process is symbolized through its root.
    @Test func aTreeInItsOwnMountNamespaceIsSymbolized() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftprof-mountns-\(getpid())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let script = "mount -t tmpfs none \(directory) && cp \(try FixtureBuild.executable("tree")) \(directory)/treens && exec \(directory)/treens 1"
        let fixture = try Fixture("/usr/bin/unshare", arguments: ["--mount", "--propagation", "private", "sh", "-c", script])
        defer { fixture.stop() }
        let pids = fixture.readyWords.compactMap { Int32($0) }
        try #require(pids.count == 2 && pids[0] == fixture.pid, "\(fixture.readyWords)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/treens"), "the tmpfs is seen from the host")
        let result = try swiftprof("dump", "--children", "\(fixture.pid)", "--no-kernel")
        #expect(result.status == 0, "\(result.stderr)")
        let profile = try parseProfile(result.stdout)
        #expect(profile.records.contains { $0.processes.first?.pid == pids[0] && $0.functions.contains("parent_nap") }, "\(result.stdout)")
        #expect(profile.records.contains { $0.processes.first?.pid == pids[1] && $0.functions.contains("child_poll") }, "\(result.stdout)")
        // eu-stack cannot read these (it looks for the file on the host); the frames' lines
        // come from the DWARF of the copy on the tmpfs.
        let poller = try #require(profile.records.first { $0.processes.first?.pid == pids[1] && $0.functions.contains("child_poll") })
        #expect(Array(poller.userFunctions.drop { $0 != "child_poll" }.prefix(2)) == ["child_poll", "child_poller"], "\(result.stdout)")
        #expect(poller.frame("child_poll")?.file.hasSuffix("tree.c") == true, "\(result.stdout)")
    }

    /// Every format says which process each stack is of.
    @Test func everyFormatNamesTheProcess() throws {
        let (fixture, pids) = try Self.tree(1)
        defer { fixture.stop() }
        let traceback = try swiftprof("dump", "--children", "\(fixture.pid)", "--format", "traceback").stdout
        #expect(traceback.hasPrefix("process \(pids[0]) \""), "\(traceback)")
        #expect(traceback.contains("\nprocess \(pids[1]) \"tree: child 1\":\n\nthread \(pids[1]) "), "\(traceback)")
        let json = FileManager.default.temporaryDirectory.appendingPathComponent("processes-\(getpid()).json").path
        let proto = FileManager.default.temporaryDirectory.appendingPathComponent("processes-\(getpid()).pb.gz").path
        defer { for file in [json, proto] { try? FileManager.default.removeItem(atPath: file) } }
        #expect(try swiftprof("dump", "--children", "\(fixture.pid)", "--format", "json", "-o", json).status == 0)
        let schema = Paths.packageRoot.appendingPathComponent("Fixtures/schemas/swiftprof-profile-1.schema.json").path
        let check = try run("python3", ["-c", "import json, sys; import jsonschema; jsonschema.validate(json.load(open(sys.argv[2])), json.load(open(sys.argv[1])))",
                                        schema, json])
        #expect(check.status == 0, "\(check.stderr)")
        let back = try parseProfile(try swiftprof("dump", "--input", json).stdout)
        #expect(Set(back.records.flatMap(\.processes).map(\.pid)) == Set(pids))
        #expect(try swiftprof("dump", "--children", "\(fixture.pid)", "--format", "pprof", "-o", proto).status == 0)
        let tags = try run("go", ["tool", "pprof", "-tags", proto], environment: FormatsTests.goEnvironment)
        #expect(tags.stdout.contains(" pid:") && tags.stdout.contains("\(pids[1])") && tags.stdout.contains("tree: child 1"),
                "\(tags.stdout)\(tags.stderr)")
    }

    /// Layers gets a process column; speedscope a profile a process.
    @Test func layersAndSpeedscopeAreByProcess() throws {
        let (fixture, pids) = try Self.tree(1)
        defer { fixture.stop() }
        let layers = try swiftprof("dump", "--children", "\(fixture.pid)", "--format", "layers", "--markdown").stdout
        #expect(layers.hasPrefix("| Process | Application |"), "\(layers)")
        #expect(layers.contains("| tree: child 1 (\(pids[1])) | child_poller → child_poll |"), "\(layers)")
        let speedscope = try swiftprof("dump", "--children", "\(fixture.pid)", "--format", "speedscope").stdout
        let file = try #require(try JSONSerialization.jsonObject(with: Data(speedscope.utf8)) as? [String: Any])
        let names = (file["profiles"] as? [[String: Any]])?.compactMap { $0["name"] as? String } ?? []
        #expect(names.count == 2 && names[0].hasPrefix("\(pids[0]) ") && names[1] == "\(pids[1]) tree: child 1", "\(names)")
    }

    /// diff compares by process name, not pid: two runs of the same tree are the same.
    @Test func diffComparesProcessesByName() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("swiftprof-diff-\(getpid())").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        for (name, children) in [("a", 2), ("b", 2), ("c", 3)] {
            let (fixture, _) = try Self.tree(children)
            defer { fixture.stop() }
            let result = try swiftprof("dump", "--children", "\(fixture.pid)", "--no-kernel", "-o", scratch + "/" + name)
            #expect(result.status == 0, "\(result.stderr)")
        }
        let same = try swiftprof("diff", scratch + "/a", scratch + "/b")
        #expect(same.status == 0 && same.stdout.contains("\n0 stacks changed\n"), "\(same.stdout)")
        // A third child: its three stacks appear, under its name; the parent's argv differs ("3"), so its two move.
        let grown = try swiftprof("diff", scratch + "/a", scratch + "/c")
        #expect(grown.status == 1, "\(grown.stdout)")
        #expect(grown.stdout.components(separatedBy: "\n# process: \"tree: child 3\"\n").count == 4, "\(grown.stdout)")
        #expect(!grown.stdout.contains("\"tree: child 1\""), "\(grown.stdout)")
    }

    /// attach --children follows the tree: a child born during the run is found by its
    /// parent's FORK record and sampled from the next tick, one that ends keeps its
    /// samples; each process's samples are its own threads' (every thread is blocked:
    /// one sample a tick each).
    @Test func attachFollowsChildrenBornAndEndedDuringTheRun() throws {
        let (fixture, pids) = try Self.tree(1)
        defer { fixture.stop() }
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("attach-tree-\(getpid()).txt").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let attach = Process()
        attach.executableURL = URL(fileURLWithPath: Paths.swiftprof)
        attach.arguments = ["attach", "--children", "\(fixture.pid)", "--duration", "3s", "--rate", "50", "--no-kernel",
                            "--progress", "--stats", "-o", output]
        let progress = Pipe()
        attach.standardError = progress
        try attach.run()
        // Each progress line (every 200 ms of sampling) says the run is on: the child is
        // born after the first, ended after three more.
        var said: [String] = []
        func waitForProgress(_ lines: Int) throws {
            for _ in 0..<lines { said.append(try #require(Fixture.readLine(progress.fileHandleForReading), "\(said)")) }
        }
        try waitForProgress(1)
        let born = try #require(fixture.ask("fork").flatMap { Int32($0.split(separator: " ").last ?? "") })
        try waitForProgress(3)
        #expect(fixture.ask("end") == "ended \(born)")
        while let line = Fixture.readLine(progress.fileHandleForReading) { said.append(line) }
        attach.waitUntilExit()
        #expect(attach.terminationStatus == 0, "\(said)")
        #expect(said.contains("swiftprof: process \(born) (tree) ended during the run"), "\(said)")
        // Found by the kernel's record of its fork, not by a listing of /proc.
        #expect(said.contains("swiftprof: processes: 3 sampled, 1 of them found during the run by a FORK record"), "\(said)")
        let text = try String(contentsOfFile: output, encoding: .utf8)
        let profile = try parseProfile(text)
        #expect(text.contains("\n# processes sampled: 3, 1 ended during the run\n"), "\(text)")
        let ticks = try #require(text.split(separator: "\n").first { $0.hasPrefix("# samples: ") }
            .flatMap { Int($0.split(separator: " ")[2]) })
        var counts: [Int32: [String: Int]] = [:]
        for record in profile.records {
            let pid = try #require(record.processes.first?.pid)
            let place = record.userFunctions.first { ["child_poll", "child_nap", "child_wait_parent", "parent_nap", "parent_read_command"].contains($0) } ?? "?"
            counts[pid, default: [:]][place, default: 0] += record.count
        }
        #expect(Set(counts.keys) == Set(pids + [born]), "\(text)")
        // The child there all along: every tick, each of its threads.
        #expect(counts[pids[1]] == ["child_poll": ticks, "child_nap": ticks, "child_wait_parent": ticks], "\(text)")
        // The one born and ended during the run: each of its threads parked for more
        // than none and fewer than the run's ticks, and for as many as the others but
        // for the tick of its birth (a thread not started or parked yet) and of its end
        // (a thread already gone), which may each catch some of them elsewhere.
        let bornCounts = try #require(counts[born])
        let parked = ["child_poll", "child_nap", "child_wait_parent"].map { bornCounts[$0] ?? 0 }
        #expect(parked.allSatisfy { $0 > 0 && $0 < ticks }, "\(text)")
        #expect(parked.max()! - parked.min()! <= 2, "\(text)")
        #expect(profile.records.first { $0.processes.first?.pid == born }?.processes.first?.commandLine == "tree: child 2", "\(text)")
    }

    /// serve of a tree: each request looks for the tree again (a child forked between
    /// two requests is in the second), its snapshot is what `dump --children` prints,
    /// its wall-clock profile is labelled by pid for go tool pprof, a view of one
    /// process's goroutines or tasks is refused, and the root's end ends serve.
    @Test func serveAnswersForATreeAsItGrows() throws {
        let (fixture, pids) = try Self.tree(1)
        defer { fixture.stop() }
        let server = try ServeProcess(targets: ["--children", "\(fixture.pid)"])
        defer { server.end() }
        let served = try parseProfile(try http(server.url("goroutine?debug=1")).body)
        let dumped = try parseProfile(try swiftprof("dump", "--children", "\(fixture.pid)").stdout)
        #expect(Set(served.records.flatMap(\.processes).map(\.pid)) == Set(pids))
        #expect(Self.stacksByProcess(served) == Self.stacksByProcess(dumped), "serve:\n\(served.records)\ndump:\n\(dumped.records)")
        let born = try #require(fixture.ask("fork").flatMap { Int32($0.split(separator: " ").last ?? "") })
        let grown = try parseProfile(try http(server.url("goroutine?debug=1")).body)
        #expect(Set(grown.records.flatMap(\.processes).map(\.pid)) == Set(pids + [born]))
        let tags = try run("go", ["tool", "pprof", "-tags", server.url("wallclock?seconds=1")], environment: FormatsTests.goEnvironment)
        let labelled = tags.stdout.split(separator: "\n").drop { !$0.contains(" pid: Total") }.dropFirst()
            .prefix { $0.contains("%") }.compactMap { $0.split(separator: " ").last.flatMap { Int32($0) } }
        #expect(Set(labelled) == Set(pids + [born]), "\(tags.stdout)\(tags.stderr)")
        let tasks = try http(server.url("goroutine?debug=1&view=tasks"))
        #expect(tasks.status == 400 && tasks.body.contains("reads one process"), "\(tasks.body)")
        #expect(try http(server.url("")).body.contains("of process \(fixture.pid) and its descendants"))
        fixture.stop()
        #expect(server.waitForExit() == 1)
        #expect(server.remainingLines().contains("swiftprof: process \(fixture.pid) exited: serve ends"))
    }

    /// `attach --children --push` is a fleet's agent: each interval one upload a
    /// process name (here every process is "tree"), each sample labelled with its
    /// pid; a child born during the run is in the uploads from the interval of its
    /// birth, and the uploads add up to the local profile, process by process. Of
    /// processes with different names (the tree's and `hot`), one series each.
    @Test func pushSendsOneSeriesAProcessNameLabelledByPid() throws {
        let receiver = try Fixture.go("ingest")
        defer { receiver.stop() }
        let port = try #require(receiver.readyWords.dropFirst().first)
        let (fixture, pids) = try Self.tree(1)
        defer { fixture.stop() }
        let directory = try FormatsTests.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let local = directory.appendingPathComponent("local.txt").path
        let attach = Process()
        attach.executableURL = URL(fileURLWithPath: Paths.swiftprof)
        attach.arguments = ["attach", "--children", "\(fixture.pid)", "--duration", "3s", "--rate", "50", "--progress", "-o", local,
                            "--push", "http://127.0.0.1:\(port)", "--push-interval", "1s"]
        let progress = Pipe()
        attach.standardError = progress
        try attach.run()
        _ = try #require(Fixture.readLine(progress.fileHandleForReading))
        let born = try #require(fixture.ask("fork").flatMap { Int32($0.split(separator: " ").last ?? "") })
        while Fixture.readLine(progress.fileHandleForReading) != nil {}
        attach.waitUntilExit()
        #expect(attach.terminationStatus == 0)
        let localCounts = Self.countsByProcess(try parseProfile(try String(contentsOfFile: local, encoding: .utf8)))
        var uploaded: [Int32: Int] = [:]
        var names: Set<String> = []
        var uploads = 0
        while uploaded != localCounts, uploads < 8, let line = receiver.ask("next"), line.hasPrefix("upload ") {
            uploads += 1
            names.insert(String(try #require(line.split(separator: " ").first { $0.hasPrefix("name=") }).dropFirst(5)))
            let file = String(try #require(line.split(separator: " ").first { $0.hasPrefix("file=") }).dropFirst(5))
            uploaded.merge(Self.countsByProcess(try parseProfile(try swiftprof("dump", "--input", file).stdout)), uniquingKeysWith: +)
        }
        #expect(uploaded == localCounts && Set(uploaded.keys) == Set(pids + [born]), "uploaded \(uploaded), local \(localCounts)")
        #expect(names == ["tree"] && (3...4).contains(uploads), "\(names), \(uploads) uploads")

        let hot = try Fixture.c("hot")
        defer { hot.stop() }
        let once = try swiftprof("attach", "\(pids[1])", "\(hot.pid)", "--duration", "0.5s", "--push", "http://127.0.0.1:\(port)")
        #expect(once.status == 0, "\(once.stderr)")
        var series: [String: Set<Int32>] = [:]
        for _ in 0..<2 {
            let line = try #require(receiver.ask("next"))
            let name = String(try #require(line.split(separator: " ").first { $0.hasPrefix("name=") }).dropFirst(5))
            let file = String(try #require(line.split(separator: " ").first { $0.hasPrefix("file=") }).dropFirst(5))
            series[name] = Set(Self.countsByProcess(try parseProfile(try swiftprof("dump", "--input", file).stdout)).keys)
        }
        #expect(series == ["tree": [pids[1]], "hot": [hot.pid]], "\(series)")
        #expect(try swiftprof("attach", "\(pids[1])", "\(hot.pid)", "--push", "http://127.0.0.1:\(port)", "--push-name", "x").status == 64)
    }

    /// Samples of each process in a profile.
    private static func countsByProcess(_ profile: PprofTextProfile) -> [Int32: Int] {
        var counts: [Int32: Int] = [:]
        for record in profile.records { for process in record.processes { counts[process.pid, default: 0] += record.count } }
        return counts
    }

    /// run follows its command's children by default (the command keeps swiftprof's
    /// stdin and stdout: the tree's ready line comes through); --no-follow-children
    /// samples the command's own process, as run did before.
    @Test func runFollowsTheCommandsChildren() throws {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("run-tree-\(getpid()).txt").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        for follow in [true, false] {
            let run = Process()
            run.executableURL = URL(fileURLWithPath: Paths.swiftprof)
            run.arguments = ["run", "--duration", "1s", "--rate", "50", "--no-kernel", "-o", output]
                + (follow ? [] : ["--no-follow-children"]) + ["--", try FixtureBuild.executable("tree"), "2"]
            let (input, ready, errors) = (Pipe(), Pipe(), Pipe())
            (run.standardInput, run.standardOutput, run.standardError) = (input, ready, errors)
            try run.run()
            let line = try #require(Fixture.readLine(ready.fileHandleForReading))
            let pids = line.split(separator: " ").dropFirst().compactMap { Int32($0) }
            try #require(pids.count == 3, "\(line)")
            run.waitUntilExit()
            try? input.fileHandleForWriting.close()
            let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(run.terminationStatus == 0, "\(stderr)")
            #expect(stderr.hasSuffix("tree was killed by signal 15\n"), "\(stderr)")
            let text = try String(contentsOfFile: output, encoding: .utf8)
            let profile = try parseProfile(text)
            if follow {
                #expect(Set(profile.records.flatMap(\.processes).map(\.pid)) == Set(pids), "\(text)")
                #expect(profile.records.contains { $0.processes.first?.pid == pids[1] && $0.functions.contains("child_poll") }, "\(text)")
            } else {
                #expect(profile.records.allSatisfy { $0.processes.isEmpty && !$0.functions.contains("child_poll") }, "\(text)")
                #expect(profile.record(containing: "parent_nap") != nil, "\(text)")
            }
        }
    }

    /// Debian's nginx, master and two workers on loopback, by --name (a copy of its
    /// binary under a name of this test's own): each process as ps shows it, the master
    /// in rt_sigsuspend and each worker in epoll_wait, and attach samples every one.
    @Test func nginxMasterAndWorkersByName() throws {
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/sbin/nginx"), "nginx-light is not installed (make deps installs it)")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftprof-nginx-\(getpid())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let name = "spnginx\(getpid())"
        try FileManager.default.copyItem(atPath: "/usr/sbin/nginx", toPath: directory + "/" + name)
        // A free port on loopback, from the kernel.
        let port = try #require(Self.freePort())
        let config = """
            daemon off; master_process on; worker_processes 2; pid \(directory)/nginx.pid; error_log stderr info;
            events { worker_connections 64; }
            http {
                access_log off;
                client_body_temp_path \(directory); proxy_temp_path \(directory); fastcgi_temp_path \(directory);
                uwsgi_temp_path \(directory); scgi_temp_path \(directory);
                server { listen 127.0.0.1:\(port); location / { return 200 "ok"; } }
            }
            """
        try config.write(toFile: directory + "/nginx.conf", atomically: true, encoding: .utf8)
        let nginx = Process()
        nginx.executableURL = URL(fileURLWithPath: directory + "/" + name)
        nginx.arguments = ["-p", directory, "-c", directory + "/nginx.conf", "-e", "stderr"]
        let log = Pipe()
        nginx.standardError = log
        try nginx.run()
        defer {
            kill(nginx.processIdentifier, SIGQUIT)
            nginx.waitUntilExit()
        }
        // Ready: the master says it started each worker.
        var workers: [Int32] = []
        while workers.count < 2, let line = Fixture.readLine(log.fileHandleForReading) {
            if let range = line.range(of: "start worker process ") { workers += [Int32(line[range.upperBound...])].compactMap { $0 } }
        }
        try #require(workers.count == 2, "nginx did not start its workers")
        let master = nginx.processIdentifier
        // Each worker reaches its event loop soon after it is started: a few dumps until both have.
        var profile: PprofTextProfile?
        var text = ""
        for _ in 0..<50 {
            let result = try swiftprof("dump", "--name", name, "--no-kernel")
            #expect(result.status == 0, "\(result.stderr)")
            text = result.stdout
            let read = try parseProfile(text)
            let calls = Dictionary(read.records.compactMap { record in record.processes.first.map { ($0.pid, record.state?.systemCall?.name ?? "") } },
                                   uniquingKeysWith: { a, _ in a })
            if calls[master] == "rt_sigsuspend" && workers.allSatisfy({ calls[$0] == "epoll_wait" }) {
                profile = read
                break
            }
        }
        let found = try #require(profile, "master not in rt_sigsuspend or a worker not in epoll_wait:\n\(text)")
        let processes = Dictionary(found.records.flatMap(\.processes).map { ($0.pid, $0.commandLine) }, uniquingKeysWith: { a, _ in a })
        #expect(Set(processes.keys) == Set([master] + workers), "\(text)")
        #expect(processes[master]?.hasPrefix("nginx: master process ") == true, "\(processes)")
        for worker in workers { #expect(processes[worker] == "nginx: worker process", "\(processes)") }
        // A worker's layers (#31): its event loop calls epoll_wait through a static function
        // the stripped binary does not name; the runtime entry is still glibc's epoll_wait.
        let layers = try swiftprof("dump", "--format", "layers", "--no-kernel", "\(workers[0])").stdout
        let row = try #require(layers.split(separator: "\n").first { $0.hasPrefix("main → ") }, "\(layers)")
        let columns = row.split(separator: "  ", omittingEmptySubsequences: true).map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(columns.count >= 4 && columns[1] == "epoll_wait" && columns[2] == "epoll_wait", "\(layers)")
        // Sampled over time, every process has its samples.
        let sampled = try swiftprof("attach", "--name", name, "--duration", "1s", "--rate", "50", "--no-kernel")
        #expect(sampled.status == 0, "\(sampled.stderr)")
        let pids = Set(try parseProfile(sampled.stdout).records.flatMap(\.processes).map(\.pid))
        #expect(pids == Set([master] + workers), "\(sampled.stdout)")
    }

    /// A port nothing listens on now: bound to 0 on loopback, read back, closed.
    private static func freePort() -> UInt16? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        return bound ? UInt16(bigEndian: address.sin_port) : nil
    }

    private static func isRunning(_ pid: Int32) -> Bool {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return !tasks.isEmpty && tasks.allSatisfy { tid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return true }
            return !"tT".contains(stat[stat.index(close, offsetBy: 2)])
        }
    }
}

/// Where cgroup v2 is mounted, read as a test would (not through the code under test).
enum ProcessSelectionProbe {
    static func cgroup2Mount() -> String? {
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.contains(" - cgroup2 ") {
            let fields = line.split(separator: " ")
            if fields.count > 4 { return String(fields[4]) }
        }
        return nil
    }
}
