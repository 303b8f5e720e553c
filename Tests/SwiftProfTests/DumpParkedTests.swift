// End to end: the real `swiftprof dump` on the parked C fixture.
import Foundation
import SwiftProf
import Testing

@Suite(.serialized)
struct DumpParkedTests {
    static let source = "Fixtures/c/parked.c"

    @Test func everyThreadIsNamedWithFileAndLine() throws {
        let fixture = try Fixture.c("parked")
        defer { fixture.stop() }
        let result = try swiftprof("dump", "\(fixture.pid)")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix("thread profile: total 12\n"))
        let profile = try parseProfile(result.stdout)
        #expect(profile.records.reduce(0) { $0 + $1.count } == 12)

        let workers = try #require(profile.record(containing: "worker_wait"))
        #expect(workers.count == 8)
        #expect(workers.functions.contains("___pthread_cond_wait"))
        #expect(workers.frame("worker_wait")?.line == sourceLine(Self.source, containing: "pthread_cond_wait(&never, &lock)"))
        #expect(workers.frame("worker_wait")?.file.hasSuffix(Self.source) == true)
        #expect(workers.functions.suffix(2) == ["start_thread", "__clone3"])
        #expect(workers.truncation == nil)

        let sleeper = try #require(profile.record(containing: "sleep_at_depth"))
        #expect(sleeper.count == 1)
        #expect(sleeper.functions.filter { $0 == "recurse" }.count == 6)
        #expect(sleeper.userFunctions.prefix(2) == ["__GI___clock_nanosleep", "__GI___nanosleep"])
        #expect(sleeper.frame("sleep_at_depth")?.line == sourceLine(Self.source, containing: "for (;;) nanosleep("))
        #expect(sleeper.frame("sleeper")?.line == sourceLine(Self.source, containing: "recurse(5);"))

        let poller = try #require(profile.record(containing: "poll_forever"))
        #expect(poller.userFunctions.first == "epoll_wait")
        #expect(poller.frame("poll_forever")?.line == sourceLine(Self.source, containing: "epoll_wait(fd, events"))

        let spinner = try #require(profile.record(containing: "spin_forever"))
        #expect(spinner.functions.first == "spin_forever")

        // read_byte is inlined into wait_for_eof: two logical frames at one address.
        let main = try #require(profile.record(containing: "wait_for_eof"))
        let inlined = try #require(main.locations.first { $0.lines.contains { $0.function == "read_byte" } })
        #expect(inlined.lines.map(\.function) == ["read_byte", "wait_for_eof"])
        #expect(inlined.lines[0].line == sourceLine(Self.source, containing: "return read(fd, byte, 1);"))
        #expect(inlined.lines[1].line == sourceLine(Self.source, containing: "while (read_byte(0, &byte) > 0)"))
        #expect(main.functions.suffix(4) == ["main", "__libc_start_call_main", "__libc_start_main_impl", "_start"])
        fixture.expectRunning()
    }

    /// libc's separate debug file has compressed sections; the first run keeps an
    /// inflated copy under the cache directory, and what the next run prints from
    /// it is the same, byte for byte.
    @Test func inflatedDebugFilesAreCachedAndChangeNothing() throws {
        let fixture = try Fixture.c("parked")
        defer { fixture.stop() }
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("swiftprof-cache-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: cache) }
        var environment = ProcessInfo.processInfo.environment
        environment["XDG_CACHE_HOME"] = cache.path
        let arguments = ["dump", "--addresses", "relative", "--no-kernel", "\(fixture.pid)"]
        let cold = try run(Paths.swiftprof, arguments, environment: environment)
        let copies = (try? FileManager.default.contentsOfDirectory(atPath: cache.path + "/swiftprof/debug")) ?? []
        let warm = try run(Paths.swiftprof, arguments, environment: environment)
        #expect(cold.status == 0 && warm.status == 0, "\(cold.stderr)\(warm.stderr)")
        #expect(cold.stdout.contains("./nptl/"), "libc6-dbg gives libc's frames their lines")
        #expect(copies.count == 1 && copies[0].hasSuffix(".debug"), "\(copies)")
        // The spinner is running: its pc moves between captures. Every blocked thread stays put.
        func blocked(_ text: String) -> String {
            text.components(separatedBy: "\n\n").filter { !$0.contains("spin_forever") }.joined(separator: "\n\n")
        }
        #expect(blocked(warm.stdout) == blocked(cold.stdout))
        fixture.expectRunning()
    }

    @Test func framesMatchEuStack() throws {
        let fixture = try Fixture.c("parked")
        defer { fixture.stop() }
        let ours = try swiftprof("dump", "\(fixture.pid)")
        let theirs = try run("eu-stack", ["-i", "-s", "-p", "\(fixture.pid)"])
        #expect(theirs.status == 0, "eu-stack: \(theirs.stderr)")
        let profile = try parseProfile(ours.stdout)
        // eu-stack shows user frames only.
        let ourStacks = profile.records.flatMap { record in Array(repeating: record.userFunctions, count: record.count) }
        #expect(ourStacks.map { $0.joined(separator: " < ") }.sorted()
                == EuStack.functionsPerThread(theirs.stdout).map { $0.joined(separator: " < ") }.sorted())
        fixture.expectRunning()
    }

    @Test func noInlineShowsPhysicalFramesOnly() throws {
        let fixture = try Fixture.c("parked")
        defer { fixture.stop() }
        let profile = try parseProfile(try swiftprof("dump", "--no-inline", "\(fixture.pid)").stdout)
        let main = try #require(profile.record(containing: "wait_for_eof"))
        #expect(!main.functions.contains("read_byte"))
        #expect(main.locations.allSatisfy { $0.lines.count == 1 })
    }

    @Test func relativeAddressesAreTheSameAcrossRuns() throws {
        let first = try Fixture.c("parked"), second = try Fixture.c("parked")
        defer { first.stop(); second.stop() }
        func blockedRecords(_ pid: Int32) throws -> String {
            let text = try swiftprof("dump", "--addresses=relative", "\(pid)").stdout
            // The spinner is running: its pc moves between captures. Every blocked thread stays put.
            return text.components(separatedBy: "\n\n").filter { !$0.contains("spin_forever") }.joined(separator: "\n\n")
        }
        let a = try blockedRecords(first.pid), b = try blockedRecords(second.pid)
        #expect(a.contains("worker_wait"))
        #expect(a == b)
        // Absolute addresses differ between the two (ASLR), which is what relative is for.
        let absolute = try swiftprof("dump", "\(first.pid)").stdout
        let firstRecord = try #require(a.split(separator: "\n").first { $0.first?.isNumber == true })
        #expect(!absolute.contains(firstRecord))
    }

    /// Relative means two identical states print identical bytes: the joined thread's id
    /// in main's futex arguments and kernel addresses (moved by KASLR at every boot)
    /// follow the run, so they are left out or counted from the kernel's start (#17 item 7).
    @Test func relativeOutputHasNoThreadIDsAndKernelOffsets() throws {
        let first = try Fixture.c("kvserver"), second = try Fixture.c("kvserver")
        defer { first.stop(); second.stop() }
        let a = try swiftprof("dump", "--addresses=relative", "\(first.pid)").stdout
        let b = try swiftprof("dump", "--addresses=relative", "\(second.pid)").stdout
        #expect(a.contains("pthread_join") || a.contains("pthread_clockjoin"), "\(a)")
        #expect(a == b, "\(a)\n---\n\(b)")
        let absolute = try swiftprof("dump", "\(first.pid)").stdout
        let tids = Set(try parseProfile(absolute).records.flatMap(\.threadIDs).map(String.init))
        let stateLines = a.split(separator: "\n").filter { $0.hasPrefix("# state: ") }
        #expect(!stateLines.isEmpty)
        for line in stateLines {
            let words = line.split { ", ()".contains($0) }.map(String.init)
            #expect(tids.isDisjoint(with: words), "a thread id in \(line)")
        }
        // Kernel frames (there are some as root) are offsets from the kernel's start, not
        // addresses, and say they are the kernel's where a file would go (#17 item 8).
        let kernel = try parseProfile(a).records.flatMap(\.locations).filter(\.isKernel)
        #expect(kernel.allSatisfy { $0.address < 0x8000_0000_0000_0000 }, "\(kernel.map(\.address))")
        let kernelLines = absolute.split(separator: "\n").filter { $0.hasPrefix("#\t0xffff") }
        #expect(kernel.count == kernelLines.count, "kernel frames read back as the kernel's")
        #expect(kernelLines.allSatisfy { $0.hasSuffix("\t[kernel]") }, "\(kernelLines)")
    }

    /// A frame without a symbol names its object and the offset in it, as pprof and perf
    /// do (#17 item 10): the truth is the object's load address in /proc/PID/maps.
    @Test func framesWithoutASymbolNameTheirObject() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftprof-strip-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let stripped = directory.appendingPathComponent("parked-stripped").path
        #expect(try run("strip", ["-o", stripped, try FixtureBuild.executable("parked")]).status == 0)
        let fixture = try Fixture(stripped)
        defer { fixture.stop() }
        let result = try swiftprof("dump", "--no-kernel", "\(fixture.pid)")
        #expect(result.status == 0, "\(result.stderr)")
        let maps = try String(contentsOfFile: "/proc/\(fixture.pid)/maps", encoding: .utf8)
        let base = try #require(maps.split(separator: "\n").first { $0.hasSuffix(stripped) && $0.split(separator: " ")[2] == "00000000" }
            .flatMap { UInt64($0.prefix { $0 != "-" }, radix: 16) })
        let lines = result.stdout.split(separator: "\n").filter { $0.contains("\t[\(stripped)+0x") }
        #expect(!lines.isEmpty, "\(result.stdout)")
        for line in lines {
            let fields = line.split(separator: "\t")
            let address = try #require(UInt64(fields[1].dropFirst(2), radix: 16))
            #expect(fields[2] == "[\(stripped)+0x\(String(address - base, radix: 16))]", "\(line)")
        }
        // And it reads back as it was.
        let file = directory.appendingPathComponent("snapshot.txt").path
        try result.stdout.write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try swiftprof("dump", "--input", file).stdout == result.stdout)
        // Every format names such a frame so (#31): folded stacks carry no bare address.
        let folded = try swiftprof("dump", "--no-kernel", "--format", "folded", "\(fixture.pid)")
        let frames = folded.stdout.split(separator: "\n").flatMap { $0.split(separator: " ").dropLast().joined(separator: " ").split(separator: ";") }
        #expect(frames.contains { $0.hasPrefix("[\(stripped)+0x") }, "\(folded.stdout)")
        #expect(!frames.contains { $0.hasPrefix("0x") }, "\(folded.stdout)")
        // Two runs of a stripped program, loaded at different addresses, diff as the same
        // stacks. waits.c, whose every thread is blocked for good: parked.c's spinner is
        // somewhere else in its loop at each capture, which a diff rightly reports.
        let blocked = directory.appendingPathComponent("waits-stripped").path
        #expect(try run("strip", ["-o", blocked, try FixtureBuild.executable("waits")]).status == 0)
        let once = try Fixture(blocked), again = try Fixture(blocked)
        defer { once.stop(); again.stop() }
        let first = directory.appendingPathComponent("once.txt").path, second = directory.appendingPathComponent("again.txt").path
        try swiftprof("dump", "--no-kernel", "\(once.pid)").stdout.write(toFile: first, atomically: true, encoding: .utf8)
        try swiftprof("dump", "--no-kernel", "\(again.pid)").stdout.write(toFile: second, atomically: true, encoding: .utf8)
        #expect(try String(contentsOfFile: second, encoding: .utf8).contains("\t[\(blocked)+0x"))
        let diff = try swiftprof("diff", first, second)
        #expect(diff.status == 0 && diff.stdout.contains("\n0 stacks changed\n"), "\(diff.stdout)\(diff.stderr)")
        // With kernel frames on one side only, the stacks are still the same ones.
        let withKernel = directory.appendingPathComponent("kernel.txt").path
        try swiftprof("dump", "\(again.pid)").stdout.write(toFile: withKernel, atomically: true, encoding: .utf8)
        let kernelDiff = try swiftprof("diff", withKernel, second)
        #expect(kernelDiff.stdout.contains("# kernel frames left out: one of the profiles has none\n0 stacks changed\n"),
                "\(kernelDiff.stdout)\(kernelDiff.stderr)")
    }

    @Test func memoryMapIsAppendedAndGoPprofReadsIt() throws {
        let fixture = try Fixture.c("parked")
        defer { fixture.stop() }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("swiftprof-\(fixture.pid).txt").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        let result = try swiftprof("dump", "--memory-map", "-o", file, "\(fixture.pid)")
        #expect(result.status == 0)
        #expect(result.stdout.isEmpty)
        let text = try String(contentsOfFile: file, encoding: .utf8)
        #expect(text.contains("\n--- Memory map: ---\n"))
        #expect(text.contains(try FixtureBuild.executable("parked")))
        let pprof = try run("go", ["tool", "pprof", "-raw", file], environment: ["HOME": NSTemporaryDirectory(), "PATH": "/usr/lib/go/bin:/usr/bin:/bin"])
        #expect(pprof.status == 0, "go tool pprof: \(pprof.stderr)")
        #expect(pprof.stdout.contains("Samples:"))
        // 12 threads in 5 records; pprof prints one sample line per record.
        #expect(pprof.stdout.contains("      8: "))
    }
}

/// Reads `eu-stack -i -s` output: per TID, the function of every frame, leaf first.
enum EuStack {
    static func functionsPerThread(_ text: String) -> [[String]] {
        var threads: [[String]] = []
        for line in text.split(separator: "\n") {
            if line.hasPrefix("TID ") { threads.append([]); continue }
            guard line.hasPrefix("#"), !threads.isEmpty else { continue }
            // "#3  0x000055d0c1a0b3c8 name" (the name may be missing)
            let fields = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
            threads[threads.count - 1].append(fields.count > 2 ? String(fields[2]) : "")
        }
        return threads
    }
}
