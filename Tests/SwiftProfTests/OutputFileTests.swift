// -o FILE: checked before any work, written whole or not at all, with statuses
// of its own (73 cannot create, 74 write failed).
import Foundation
import Testing

@Suite(.serialized)
struct OutputFileTests {
    static let missing = "/nonexistent-swiftprof-directory/profile.txt"

    /// An hour of sampling asked for: it must end at once, before sampling (the time
    /// limit fails the test if it samples first).
    @Test(.timeLimit(.minutes(1)))
    func attachChecksTheOutputBeforeSampling() throws {
        let fixture = try Fixture.c("parked")
        defer { fixture.stop() }
        let result = try swiftprof("attach", "--duration", "1h", "-o", Self.missing, "\(fixture.pid)")
        #expect(result.status == 73)
        #expect(result.stderr == "swiftprof: cannot write \(Self.missing): No such file or directory\n")
        #expect(result.stdout.isEmpty)
        fixture.expectRunning()
    }

    @Test func runDoesNotStartTheCommandWhenItCannotWrite() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let marker = directory + "/started"
        let result = try swiftprof("run", "-o", Self.missing, "--", "/usr/bin/touch", marker)
        #expect(result.status == 73)
        #expect(!FileManager.default.fileExists(atPath: marker))
    }

    @Test func dumpAndDiffSayTheSame() throws {
        let fixture = try Fixture.c("parked")
        defer { fixture.stop() }
        let dump = try swiftprof("dump", "-o", Self.missing, "\(fixture.pid)")
        #expect(dump.status == 73)
        #expect(dump.stderr == "swiftprof: cannot write \(Self.missing): No such file or directory\n")
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let saved = directory + "/a.txt"
        #expect(try swiftprof("dump", "-o", saved, "\(fixture.pid)").status == 0)
        let diff = try swiftprof("diff", saved, saved, "-o", Self.missing)
        #expect(diff.status == 73)
    }

    /// /dev/full takes the open and refuses every write (ENOSPC): 74, one line.
    @Test func aFailedWriteHasItsOwnStatus() throws {
        let fixture = try Fixture.c("parked")
        defer { fixture.stop() }
        let result = try swiftprof("dump", "-o", "/dev/full", "\(fixture.pid)")
        #expect(result.status == 74)
        #expect(result.stderr == "swiftprof: cannot write /dev/full: No space left on device\n")
    }

    /// A file is replaced whole: the new profile in place, nothing left beside it.
    @Test func aFileIsReplacedWhole() throws {
        let fixture = try Fixture.c("parked")
        defer { fixture.stop() }
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/profile.txt"
        try "old contents\n".write(toFile: file, atomically: false, encoding: .utf8)
        let result = try swiftprof("dump", "-o", file, "\(fixture.pid)")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try String(contentsOfFile: file, encoding: .utf8).hasPrefix("thread profile: total 12\n"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["profile.txt"])
        let mode = try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int
        #expect(mode == 0o644)
    }

    private func temporaryDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("swiftprof-out-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

/// An input file's counts go up to 2^40: no writer expands them one by one.
@Suite(.serialized)
struct HugeCountTests {
    @Test(.timeLimit(.minutes(1)))
    func aCountOf2To40IsWrittenWithoutExpandingIt() throws {
        let fixture = try Fixture.c("parked")
        defer { fixture.stop() }
        // Relative addresses: no thread ids, so a group stands for `count` threads.
        var lines = try swiftprof("dump", "--no-kernel", "--addresses", "relative", "\(fixture.pid)").stdout
            .split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let huge = 1 << 40
        lines[0] = "thread profile: total \(huge + 4)"
        let workers = try #require(lines.firstIndex { $0.hasPrefix("8 @ ") })
        lines[workers] = "\(huge)" + lines[workers].dropFirst()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftprof-huge-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/huge.txt"
        try lines.joined(separator: "\n").write(toFile: file, atomically: false, encoding: .utf8)

        let folded = try swiftprof("dump", "--input", file, "--format", "folded", "--thread-names")
        #expect(folded.status == 0, "\(folded.stderr)")
        #expect(folded.stdout.split(separator: "\n").contains { $0.hasPrefix("worker;") && $0.hasSuffix(" \(huge)") }, "\(folded.stdout)")
        let traceback = try swiftprof("dump", "--input", file, "--format", "traceback")
        #expect(traceback.status == 65)
        #expect(traceback.stderr == "swiftprof: --format traceback prints one block a thread: \(huge + 4) is more than 1000000; use pprof-text or folded\n")
        for format in ["speedscope", "flamegraph", "json", "pprof", "layers", "mermaid", "pprof-text"] {
            #expect(try swiftprof("dump", "--input", file, "--format", format, "-o", directory + "/out").status == 0, "\(format)")
        }
    }
}
