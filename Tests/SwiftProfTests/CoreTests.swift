// `dump --core FILE`: cores written by gcore (gdb) from running fixtures and by a
// crash, compared thread for thread with `dump PID` taken just before, with
// `eu-stack --core`, and for Go with the live goroutine dump; compressed copies
// made by the zstd, xz and lz4 tools; broken cores refused with one line.
import Foundation
import Glibc
import SwiftProf
import Testing

@Suite(.serialized)
struct CoreTests {
    /// A scratch directory for one test's cores, removed after.
    final class Scratch {
        let path: String
        init() throws {
            path = FileManager.default.temporaryDirectory.appendingPathComponent("swiftprof-core-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        deinit { try? FileManager.default.removeItem(atPath: path) }
        func file(_ name: String) -> String { path + "/" + name }
    }

    /// gcore's core of a live process (gdb attaches, writes it, and lets the process go).
    static func gcore(_ pid: Int32, into scratch: Scratch) throws -> String {
        let prefix = scratch.file("core")
        let result = try runAsFromAShell(["gcore", "-o", prefix, "\(pid)"])
        let path = "\(prefix).\(pid)"
        #expect(result.status == 0 && FileManager.default.fileExists(atPath: path), "gcore: \(result.stdout)\(result.stderr)")
        return path
    }

    /// Each thread's user functions, leaf first, by tid: what a record stands for, expanded.
    static func functionsByThread(_ text: String) throws -> [Int32: [String]] {
        var threads: [Int32: [String]] = [:]
        for record in try parseProfile(text).records {
            for tid in record.threadIDs { threads[tid] = record.userFunctions }
        }
        return threads
    }

    /// Each thread's system call, by tid ("" outside one).
    static func syscallsByThread(_ text: String) throws -> [Int32: String] {
        var calls: [Int32: String] = [:]
        for record in try parseProfile(text).records {
            for tid in record.threadIDs { calls[tid] = record.state?.systemCall?.name ?? "" }
        }
        return calls
    }

    @Test(arguments: ["parked", "parked_cpp"])
    func aCoreShowsTheStacksTheLiveProcessShowed(_ name: String) throws {
        let fixture = try Fixture.c(name)
        defer { fixture.stop() }
        let scratch = try Scratch()
        let live = try swiftprof("dump", "--no-kernel", "\(fixture.pid)")
        #expect(live.status == 0, "\(live.stderr)")
        let core = try Self.gcore(fixture.pid, into: scratch)
        fixture.expectRunning()
        let dumped = try swiftprof("dump", "--core", core)
        #expect(dumped.status == 0, "\(dumped.stderr)")
        // Thread for thread, the same functions (the spinner's pc moves, its functions do not).
        let liveThreads = try Self.functionsByThread(live.stdout), coreThreads = try Self.functionsByThread(dumped.stdout)
        #expect(liveThreads.count >= 2 && coreThreads == liveThreads, "live:\n\(live.stdout)\ncore:\n\(dumped.stdout)")
        // The system call each blocked thread was in, from the core's registers, as /proc said it live.
        let liveCalls = try Self.syscallsByThread(live.stdout), coreCalls = try Self.syscallsByThread(dumped.stdout)
        #expect(coreCalls == liveCalls, "live: \(liveCalls)\ncore: \(coreCalls)")
        #expect(dumped.stdout.contains("\n# kernel frames: none, a core holds no kernel stacks"))
        #expect(dumped.stdout.contains("\n# core: \(core) of process \(fixture.pid) (\(name))\n"), "\(dumped.stdout)")
        #expect(!dumped.stdout.contains("# signal:"), "gcore's core of a running process has no fatal signal")
        // eu-stack reads the same core to the same frames.
        let theirs = try run("eu-stack", ["-i", "-s", "--core", core])
        #expect(theirs.status == 0, "eu-stack: \(theirs.stderr)")
        #expect(coreThreads.values.map { $0.joined(separator: " < ") }.sorted()
                == EuStack.functionsPerThread(theirs.stdout).map { $0.joined(separator: " < ") }.sorted(),
                "ours:\n\(dumped.stdout)\neu-stack:\n\(theirs.stdout)")
        // Every format reads it; the same core gives the same bytes.
        for format in ["pprof", "folded", "speedscope", "json", "traceback", "layers", "flamegraph", "mermaid"] {
            let output = try swiftprof("dump", "--core", core, "--format", format, "-o", scratch.file("out.\(format)"))
            #expect(output.status == 0, "\(format): \(output.stderr)")
        }
        #expect(try swiftprof("dump", "--core", core).stdout == dumped.stdout)
        // The JSON is valid by the published schema, and each readable format reads back to the same records.
        let schema = Paths.packageRoot.appendingPathComponent("Fixtures/schemas/swiftprof-profile-1.schema.json").path
        let check = try run("python3", ["-c", "import json, sys; import jsonschema; jsonschema.validate(json.load(open(sys.argv[2])), json.load(open(sys.argv[1])))",
                                        schema, scratch.file("out.json")])
        #expect(check.status == 0, "\(check.stderr)")
        let text = scratch.file("out.txt")
        try dumped.stdout.write(toFile: text, atomically: true, encoding: .utf8)
        for saved in [text, scratch.file("out.json")] {
            let back = try swiftprof("dump", "--input", saved)
            #expect(try parseProfile(back.stdout).records == (try parseProfile(dumped.stdout).records), "\(saved)")
        }
    }

    @Test func compressedCoresReadAsTheirUncompressedCore() throws {
        let fixture = try Fixture.c("parked")
        defer { fixture.stop() }
        let scratch = try Scratch()
        let core = try Self.gcore(fixture.pid, into: scratch)
        let plain = try swiftprof("dump", "--core", core)
        #expect(plain.status == 0, "\(plain.stderr)")
        let tools: [(String, [String], String)] = [("zstd", ["-q", "-f", core, "-o", core + ".zst"], "zstd"),
                                                  ("xz", ["-k", "-f", core], "xz"),
                                                  ("lz4", ["-q", "-f", core, core + ".lz4"], "lz4")]
        for (tool, arguments, kind) in tools {
            #expect(try run(tool, arguments).status == 0, "\(tool) is installed by make deps")
            let compressed = core + "." + (kind == "zstd" ? "zst" : kind)
            let read = try swiftprof("dump", "--core", compressed)
            #expect(read.status == 0, "\(kind): \(read.stderr)")
            #expect(read.stdout.contains("# core: \(compressed) of process \(fixture.pid) (parked), \(kind)-compressed\n"))
            let withoutCoreLine = { (text: String) in text.split(separator: "\n").filter { !$0.hasPrefix("# core: ") } }
            #expect(withoutCoreLine(read.stdout) == withoutCoreLine(plain.stdout), "\(kind):\n\(read.stdout)")
        }
        // Cut short: refused, nothing printed.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: core + ".zst"))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: scratch.file("cut.zst")))
        let cut = try swiftprof("dump", "--core", scratch.file("cut.zst"))
        #expect(cut.status == 65 && cut.stdout.isEmpty && cut.stderr.contains("truncated: its zstd stream ends early"), "\(cut.stderr)")
    }

    /// A crash, caught by gdb and written with gcore: the signal, its address and the thread
    /// that took it (first), on a core made the same way on any machine.
    @Test func theFatalSignalAndItsThreadComeFirst() throws {
        let scratch = try Scratch()
        let executable = try FixtureBuild.executable("crasher")
        let core = scratch.file("crash.core")
        let gdb = try runAsFromAShell(["gdb", "-batch", "-nx", "-ex", "run", "-ex", "gcore \(core)", "--args", executable])
        #expect(FileManager.default.fileExists(atPath: core), "gdb: \(gdb.stdout)\(gdb.stderr)")
        try expectCrash(core)
    }

    /// The same on a core the kernel wrote (pr_cursig set for the dumping thread only).
    @Test(.enabled(if: CoreTests.kernelWritesCoreFiles,
                   "the kernel's core_pattern is not \"core\" (it pipes cores to a program, or names them otherwise): no kernel-written core to read here; the gdb-written crash core is tested"))
    func aKernelWrittenCrashCore() throws {
        let scratch = try Scratch()
        let executable = try FixtureBuild.executable("crasher")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["kernel-core"]
        process.currentDirectoryURL = URL(fileURLWithPath: scratch.path)
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGSEGV)
        let names = try FileManager.default.contentsOfDirectory(atPath: scratch.path).filter { $0.hasPrefix("core") }
        let core = scratch.file(try #require(names.first, "no core written in \(scratch.path)"))
        try expectCrash(core)
        // The kernel writes its notes first: cut, a core lacks memory, and says so.
        let size = try #require(try FileManager.default.attributesOfItem(atPath: core)[.size] as? UInt64)
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: core))
        try handle.truncate(atOffset: size / 2)
        try handle.close()
        let cut = try swiftprof("dump", "--core", core)
        #expect(cut.status == 65 && cut.stdout.isEmpty && cut.stderr.contains("truncated: its memory at 0x"), "\(cut.stderr)")
    }

    static var kernelWritesCoreFiles: Bool {
        (try? String(contentsOfFile: "/proc/sys/kernel/core_pattern", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) == "core"
    }

    private func expectCrash(_ core: String) throws {
        let dumped = try swiftprof("dump", "--core", core)
        #expect(dumped.status == 0, "\(dumped.stderr)")
        let profile = try parseProfile(dumped.stdout)
        let first = try #require(profile.records.first)
        #expect(first.userFunctions.prefix(2) == ["store_through", "faulter"], "\(dumped.stdout)")
        let tid = try #require(first.threadIDs.first)
        #expect(dumped.stdout.contains("\n# signal: SIGSEGV at 0x10 (SEGV_MAPERR), taken by thread \(tid)\n"), "\(dumped.stdout)")
        #expect(profile.records.dropFirst().map(\.count).reduce(0, +) == 5, "4 workers and main")
        // The traceback begins with it too, as a crash report does.
        let traceback = try swiftprof("dump", "--core", core, "--format", "traceback").stdout
        #expect(traceback.hasPrefix("signal: SIGSEGV at 0x10 (SEGV_MAPERR), taken by thread \(tid)\n\nthread \(tid) \"\" [not recorded]:\nstore_through(...)\n"),
                "\(traceback)")
        let theirs = try run("eu-stack", ["-i", "-s", "--core", core])
        #expect(try Self.functionsByThread(dumped.stdout).values.map { $0.joined(separator: " < ") }.sorted()
                == EuStack.functionsPerThread(theirs.stdout).map { $0.joined(separator: " < ") }.sorted(),
                "ours:\n\(dumped.stdout)\neu-stack:\n\(theirs.stdout)")
    }

    @Test(arguments: FixtureBuild.GoToolchain.allCases)
    func goroutinesOfAGoCoreAsOfTheLiveProcess(_ toolchain: FixtureBuild.GoToolchain) throws {
        guard toolchain.isInstalledOrSaysSo() else { return }
        // Labels included: their strings are in the binary's read-only data, which a core
        // leaves out and the executable's file gives.
        let fixture = try Fixture.go("many", toolchain: toolchain, arguments: ["10"])
        defer { fixture.stop() }
        let scratch = try Scratch()
        let live = try swiftprof("dump", "--goroutines", "\(fixture.pid)")
        #expect(live.status == 0, "\(live.stderr)")
        let core = try Self.gcore(fixture.pid, into: scratch)
        let dumped = try swiftprof("dump", "--goroutines", "--core", core)
        #expect(dumped.status == 0, "\(dumped.stderr)")
        #expect(try parseProfile(dumped.stdout).records == (try parseProfile(live.stdout).records),
                "live:\n\(live.stdout)\ncore:\n\(dumped.stdout)")
        #expect(dumped.stdout.contains("# labels: {\"job\":\"import\", \"shard\":\"1\"}"))
        // And its threads, through Go's own table.
        let threads = try swiftprof("dump", "--core", core)
        #expect(threads.status == 0 && threads.stdout.contains("runtime."), "\(threads.stderr)")
    }

    /// A Swift program's tasks from its core: the same scan and the same reflection
    /// library over the core's memory, so the same records as the live dump, and as many
    /// as the fixture's own count.
    /// A core of a Swift program running async jobs: each job's thread continues with
    /// its task's async callers, read from the core's memory, and carries its task.
    @Test func aSwiftCoreShowsItsJobsAsyncCallers() throws {
        let fixture = try Fixture(AsyncStackTests.executable, arguments: ["requests"])
        defer { fixture.stop() }
        let scratch = try Scratch()
        let core = try Self.gcore(fixture.pid, into: scratch)
        let dumped = try swiftprof("dump", "--core", core)
        #expect(dumped.status == 0, "\(dumped.stderr)")
        let jobs = try parseProfile(dumped.stdout).records.filter { $0.functions.contains("SwiftAsync.sharedLookup(_:kind:) async") }
        try #require(!jobs.isEmpty, "\(dumped.stdout)")
        for record in jobs {
            let callers = Array(record.functions.drop { $0 != "SwiftAsync.sharedLookup(_:kind:) async" }.dropFirst().prefix(2))
            #expect(callers == ["SwiftAsync.handleSearch() async", "closure #1 in SwiftAsync.requests() async"]
                    || callers == ["SwiftAsync.handleIndex() async", "closure #1 in SwiftAsync.requests() async"], "\(dumped.stdout)")
            #expect(record.labels["task_name"]?.hasPrefix("server ") == true, "\(record.labels)")
        }
    }

    @Test func tasksOfASwiftCoreAsOfTheLiveProcess() throws {
        let fixture = try Fixture(DumpTasksTests.executable)
        defer { fixture.stop() }
        let scratch = try Scratch()
        let live = try swiftprof("dump", "--tasks", "\(fixture.pid)")
        #expect(live.status == 0, "\(live.stderr)")
        let core = try Self.gcore(fixture.pid, into: scratch)
        let dumped = try swiftprof("dump", "--tasks", "--core", core)
        #expect(dumped.status == 0, "\(dumped.stderr)")
        let profile = try parseProfile(dumped.stdout)
        #expect(profile.records == (try parseProfile(live.stdout).records), "live:\n\(live.stdout)\ncore:\n\(dumped.stdout)")
        let total = try #require(fixture.readyNumber(after: "TASK_TOTAL"))
        #expect(profile.records.reduce(0) { $0 + $1.count } == total)
        // What was left out (returned tasks, dead task memory) is the live process's too.
        let liveLine = try #require(live.stdout.split(separator: "\n").first { $0.hasPrefix("# capture: ") })
        let notShown = liveLine.firstRange(of: "; not shown: ").map { String(liveLine[$0.lowerBound...]) } ?? ""
        #expect(dumped.stdout.contains("# capture: \(total) tasks, read from the core\(notShown)\n"), "\(liveLine)\n\(dumped.stdout)")
    }

    @Test func brokenCoresAreRefusedWithOneLine() throws {
        let fixture = try Fixture.c("parked")
        defer { fixture.stop() }
        let scratch = try Scratch()
        let core = try Self.gcore(fixture.pid, into: scratch)
        // Broken copies are made on disk (copy, patch, cut): a core is large, and a test
        // process that grows holds its memory for the rest of the run.
        let notes = try Self.noteSegmentOffset(core)
        func copy(_ name: String, patching edits: [(Int, UInt8)] = [], length: UInt64? = nil) throws -> String {
            let path = scratch.file(name)
            try? FileManager.default.removeItem(atPath: path)
            try FileManager.default.copyItem(atPath: core, toPath: path)
            let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
            defer { try? handle.close() }
            for (offset, byte) in edits {
                try handle.seek(toOffset: UInt64(offset))
                try handle.write(contentsOf: [byte])
            }
            if let length { try handle.truncate(atOffset: length) }
            return path
        }
        func refused(_ arguments: [String], _ status: Int32, _ message: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let result = try swiftprof(["dump"] + arguments)
            #expect(result.status == status && result.stdout.isEmpty, "\(arguments): \(result.status)\n\(result.stdout)", sourceLocation: sourceLocation)
            let lines = result.stderr.split(separator: "\n")
            #expect(lines.count == 1 && lines[0].contains(message), "\(arguments): \(result.stderr)", sourceLocation: sourceLocation)
        }
        let size = try #require(try FileManager.default.attributesOfItem(atPath: core)[.size] as? UInt64)
        try refused(["--core", try FixtureBuild.executable("parked")], 65, "an ELF file but not a core")
        try refused(["--core", "/etc/passwd"], 65, "not a core file")
        try refused(["--core", scratch.file("none")], 66, "No such file or directory")
        // (gcore writes its notes last: cut, they are what is missing.)
        try refused(["--core", try copy("cut", length: size * 2 / 3)], 65, "truncated: it ends early")
        try refused(["--core", try copy("headers", length: 100)], 65, "truncated")
        try refused(["--core", try copy("arm", patching: [(18, 0xb7)])], 65, "a core of another architecture")  // EM_AARCH64
        try refused(["--core", core, "--exe", scratch.file("none")], 66, "the executable ")
        try refused(["--core", core, "--exe", try FixtureBuild.executable("hot")], 65, "is another build than the core's")
        // Corrupted notes: whatever they say, one line or a profile, never a crash.
        var seed: UInt64 = 0x5eed
        for _ in 0..<12 {
            var edits: [(Int, UInt8)] = []
            for _ in 0..<16 {
                seed = seed &* 6364136223846793005 &+ 1442695040888963407
                edits.append((notes + Int(seed >> 33) % 4096, UInt8(truncatingIfNeeded: seed >> 13)))
            }
            let result = try swiftprof("dump", "--core", try copy("corrupt", patching: edits))
            #expect([0, 1, 65].contains(result.status), "status \(result.status): \(result.stderr)")
            if result.status == 65 { #expect(result.stdout.isEmpty && result.stderr.split(separator: "\n").count == 1) }
        }
    }

    /// Where a core's PT_NOTE segment starts in the file (from its program headers).
    static func noteSegmentOffset(_ core: String) throws -> Int {
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: core))
        defer { try? handle.close() }
        let header = try #require(try handle.read(upToCount: 64))
        func word(_ data: Data, _ at: Int) -> UInt64 { data[data.startIndex + at ..< data.startIndex + at + 8].reversed().reduce(0) { $0 << 8 | UInt64($1) } }
        let count = Int(header[56]) | Int(header[57]) << 8
        try handle.seek(toOffset: word(header, 32))
        let table = try #require(try handle.read(upToCount: count * 56))
        let index = try #require((0..<count).first { table[$0 * 56] == 4 }, "no PT_NOTE")
        return Int(word(table, index * 56 + 8))
    }

    /// The target chose its core's bytes: a process name and a mapped file's name that
    /// try to forge records and memory-map lines are quoted or escaped, never obeyed.
    @Test func forgedNamesInACoreForgeNothing() throws {
        let fixture = try Fixture.c("parked")
        defer { fixture.stop() }
        let scratch = try Scratch()
        let core = try Self.gcore(fixture.pid, into: scratch)
        let notes = try Self.noteSegmentOffset(core)
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: core))
        try handle.seek(toOffset: UInt64(notes))
        let region = try #require(try handle.read(upToCount: 1 << 16))
        // Same lengths as the bytes replaced: the notes keep their shape.
        let forgeries: [(String, String)] = [("parked\0", "x\n9 @\0"), ("/usr/lib/x86_64-linux-gnu/libc.so.6", "/tmp/\n9999 @ 0x1\n#\t0x1\tforged\n123")]
        for (original, forged) in forgeries {
            let at = try #require(region.range(of: Data(original.utf8)), "\(original) in the notes")
            try handle.seek(toOffset: UInt64(notes + at.lowerBound - region.startIndex))
            try handle.write(contentsOf: Data(forged.utf8))
        }
        try handle.close()
        let result = try swiftprof("dump", "--core", core, "--memory-map")
        #expect(result.status == 1, "libc is not found under its forged name: \(result.stderr)")
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(!lines.contains { $0.hasPrefix("9999 @") || $0.hasPrefix("9 @") || $0.hasPrefix("123") || $0.hasPrefix("#\t0x1\tforged") },
                "\(result.stdout)")
        #expect(result.stdout.contains("/tmp/\\0129999 @ 0x1\\012#\t0x1\tforged\\012123"), "the kernel's escape in the map: \(result.stdout)")
        let profile = try parseProfile(result.stdout)
        #expect(profile.records.reduce(0) { $0 + $1.count } == 12)
        #expect(profile.records.flatMap(\.threadNames) == ["x\n9 @"], "the main thread's name, as the core has it")
        #expect(result.stderr.split(separator: "\n").allSatisfy { $0.hasPrefix("swiftprof: ") }, "\(result.stderr)")
    }

    /// A library not under --sysroot: named, its frames left as addresses, status 1.
    @Test func aMissingLibraryIsNamedAndItsFramesStayAddresses() throws {
        let fixture = try Fixture.c("parked")
        defer { fixture.stop() }
        let scratch = try Scratch()
        let core = try Self.gcore(fixture.pid, into: scratch)
        let executable = try FixtureBuild.executable("parked")
        let root = scratch.file("root")
        try FileManager.default.createDirectory(atPath: root + URL(fileURLWithPath: executable).deletingLastPathComponent().path,
                                                withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: executable, toPath: root + executable)
        let result = try swiftprof("dump", "--core", core, "--sysroot", root)
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr.contains("libc.so.6: not found at \(root)/"), "\(result.stderr)")
        let profile = try parseProfile(result.stdout)
        let workers = try #require(profile.records.first { $0.count == 8 }, "\(result.stdout)")
        #expect(workers.locations.count == 1 && workers.functions == [""], "a libc frame, unnamed")
        #expect(workers.truncation?.contains("libc.so.6 is not available") == true, "\(workers.truncation ?? "")")
        // The executable's own frames are still named where a walk reaches them (the spinner's leaf).
        #expect(profile.records.contains { $0.functions.first == "spin_forever" }, "\(result.stdout)")
    }

    @Test func whatActsOnALiveProcessIsRefusedWithACore() throws {
        for arguments in [["--core", "x", "--consistent"], ["--core", "x", "--tasks", "--goroutines"], ["--core", "x", "--kernel"],
                          ["--core", "x", "1"], ["--exe", "y", "1"]] {
            #expect(try swiftprof(["dump"] + arguments).status == 64, "\(arguments)")
        }
    }
}
