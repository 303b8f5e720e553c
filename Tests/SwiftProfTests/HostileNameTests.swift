// Thread names are the target's to choose (prctl PR_SET_NAME). Fixtures/c/named.c
// names its threads to forge records ("x\n1 @ 0x1\n#\t0"), split the names list
// ("a,b"), and break quoting ("q\"\\ z"). None may change the shape of the output.
import Foundation
import SwiftProf
import Testing

@Suite struct HostileNameTests {
    static let names = ["x\n1 @ 0x1\n#\t0", "a,b", "q\"\\ z", "tab\there"]

    @Test(arguments: ["x\n1 @ 0x1\n#\t0", "a,b", "q\"\\ z", "tab\there", "plain", "", "é ünïcode", " names: y", "\u{7f}\u{1}",
                      RawBytes.decode([0xff, 0x61, 0xc3])])
    func aNameReadsBackAsWritten(_ name: String) throws {
        let quoted = NameQuoting.quoted(name)
        #expect(!quoted.contains("\n") && !quoted.contains("\t"))
        #expect(NameQuoting.list(Substring(quoted + "," + quoted)) == [name, name])
    }

    @Test func forgedNamesForgeNothing() throws {
        let fixture = try Fixture.c("named")
        defer { fixture.stop() }
        let result = try swiftprof("dump", "--no-kernel", "\(fixture.pid)")
        #expect(result.status == 0, "\(result.stderr)")
        // One record line per record, and the records count the process's threads.
        let threads = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(fixture.pid)/task").count
        let profile = try parseProfile(result.stdout)
        #expect(profile.records.reduce(0) { $0 + $1.count } == threads)
        #expect(!result.stdout.contains("\n1 @ 0x1\n"))
        // Every name comes back, exactly, through our own reader.
        let saved = FileManager.default.temporaryDirectory.appendingPathComponent("swiftprof-named-\(fixture.pid).txt").path
        defer { try? FileManager.default.removeItem(atPath: saved) }
        try result.stdout.write(toFile: saved, atomically: true, encoding: .utf8)
        let json = try swiftprof("dump", "--input", saved, "--format", "json")
        #expect(json.status == 0, "\(json.stderr)")
        for name in Self.names {
            let encoded = String(data: try JSONSerialization.data(withJSONObject: [name]), encoding: .utf8)!.dropFirst().dropLast()
            #expect(json.stdout.contains(encoded), "\(name.debugDescription) lost in \(json.stdout)")
        }
        let again = try swiftprof("dump", "--input", saved)
        #expect(again.stdout == result.stdout)
        // A name that is not UTF-8 keeps its bytes: \xNN in text, the same bytes back from
        // text, from JSON and from pprof (where Go's strings keep any bytes).
        #expect(result.stdout.contains(#","\xff\xferaw\x80\xc3""# + "\n"), "\(result.stdout)")
        for format in ["json", "pprof"] {
            let converted = FileManager.default.temporaryDirectory.appendingPathComponent("swiftprof-named-\(fixture.pid).\(format)").path
            defer { try? FileManager.default.removeItem(atPath: converted) }
            #expect(try swiftprof("dump", "--input", saved, "--format", format, "-o", converted).status == 0)
            let back = try swiftprof("dump", "--input", converted)
            #expect(back.stdout.contains(#","\xff\xferaw\x80\xc3""# + "\n"), "\(format): \(back.stdout)")
        }
        // The traceback: one header per thread, each name on its own header line.
        let traceback = try swiftprof("dump", "--no-kernel", "--format", "traceback", "\(fixture.pid)").stdout
        #expect(traceback.split(separator: "\n").filter { $0.hasPrefix("thread ") }.count == threads)
        #expect(traceback.contains("thread \(fixture.pid + 1) \"x\\n1 @ 0x1\\n#\\t0\""))
        #expect(traceback.contains(#" "\xff\xferaw\x80\xc3" ["#), "\(traceback)")
        // Go's own reader counts the same threads.
        let pprof = try run("go", ["tool", "pprof", "-raw", saved], environment: ["HOME": NSTemporaryDirectory(), "PATH": "/usr/lib/go/bin:/usr/bin:/bin"])
        #expect(pprof.status == 0, "go tool pprof: \(pprof.stderr)")
        // "Samples:", a type line, then "     COUNT: LOCATION IDS" lines until "Locations".
        let samples = pprof.stdout.components(separatedBy: "\nLocations")[0].split(separator: "\n").drop { !$0.hasPrefix("Samples:") }
        let counts = samples.dropFirst(2).compactMap { Int($0.split(separator: ":")[0].trimmingCharacters(in: .whitespaces)) }
        #expect(counts.reduce(0, +) == threads, "\(pprof.stdout)")
        fixture.expectRunning()
    }
}
