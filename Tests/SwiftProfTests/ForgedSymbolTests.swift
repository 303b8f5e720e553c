// Function and file names are the target's to choose too: Fixtures/c/forged_symbols.c
// is built, then its symbol and file names are overwritten in the binary by bytes
// that try to forge a record, split a frame line and break quoting. Every format
// must keep them to their own field, and pprof-text must read back to the same bytes.
import Foundation
import SwiftProf
import Testing

@Suite(.serialized) struct ForgedSymbolTests {
    static let functionPlaceholder = "forgedname_placeholder_0123456789"
    static let filePlaceholder = "forgedfile_placeholder_0123456789"
    /// Same lengths as the placeholders, so the binary's layout does not change.
    static let function = padded("x\n1 @ 0x1\n#\t0x2\tf+0x0\t\"q\\", to: functionPlaceholder)
    static let file = padded("f\n2 @ 0x3\n#\t\"y", to: filePlaceholder)

    static func padded(_ text: String, to placeholder: String) -> String {
        text + String(repeating: "_", count: placeholder.utf8.count - text.utf8.count)
    }

    /// Built once: compiled from a copy named after the file placeholder, then patched.
    static let binary: Result<String, FixtureError> = {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftprof-forged-\(getpid())")
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let fixtures = Paths.packageRoot.appendingPathComponent("Fixtures/c")
        let source = directory.appendingPathComponent(filePlaceholder + ".c")
        let built = directory.appendingPathComponent("forged").path
        guard (try? FileManager.default.copyItem(at: fixtures.appendingPathComponent("forged_symbols.c"), to: source)) != nil,
              let result = try? run("cc", ["-O2", "-g", "-pthread", "-I", fixtures.path, "-o", built, source.path]),
              result.status == 0, var bytes = FileManager.default.contents(atPath: built).map(Array.init) else {
            return .failure(.build("forged_symbols", "cc failed"))
        }
        var replaced = [0, 0]
        for (index, (placeholder, hostile)) in [(functionPlaceholder, function), (filePlaceholder, file)].enumerated() {
            let from = Array(placeholder.utf8), to = Array(hostile.utf8)
            var offset = 0
            while offset + from.count <= bytes.count {
                if bytes[offset] == from[0] && Array(bytes[offset..<offset + from.count]) == from {
                    bytes.replaceSubrange(offset..<offset + from.count, with: to)
                    replaced[index] += 1
                    offset += from.count
                } else {
                    offset += 1
                }
            }
        }
        // Both names must have been found (in the symbol table, DWARF's strings, the line table).
        guard replaced.allSatisfy({ $0 > 0 }) else { return .failure(.build("forged_symbols", "placeholders not found: \(replaced)")) }
        let output = Paths.fixtureBuild.appendingPathComponent("forged_symbols").path
        try? FileManager.default.createDirectory(at: Paths.fixtureBuild, withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: output, contents: Data(bytes), attributes: [.posixPermissions: 0o755]) else {
            return .failure(.build("forged_symbols", "cannot write \(output)"))
        }
        return .success(output)
    }()

    @Test func pprofTextKeepsEachNameInItsFieldAndReadsBack() throws {
        let fixture = try Fixture(try Self.binary.get())
        defer { fixture.stop() }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftprof-forged-out-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("dump.txt").path
        let result = try swiftprof("dump", "--no-kernel", "-o", file, "\(fixture.pid)")
        #expect(result.status == 0, "\(result.stderr)")
        let text = try String(contentsOfFile: file, encoding: .utf8)
        // Nothing forged: one thread, one record, no line the names tried to start.
        #expect(!text.split(separator: "\n").contains { $0.hasPrefix("1 @ 0x1") || $0.hasPrefix("2 @ 0x3") }, "\(text)")
        let profile = try parseProfile(text)
        #expect(profile.records.count == 1 && profile.records.first?.count == 1, "\(text)")
        let frame = try #require(profile.records.first?.frame(Self.function), "\(text)")
        #expect(frame.file.hasSuffix("/" + Self.file + ".c"), "\(frame.file)")
        let again = try swiftprof("dump", "--input", file)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stdout == text)
        fixture.expectRunning()
    }

    @Test func everyOtherFormatKeepsTheNamesInPlace() throws {
        let fixture = try Fixture(try Self.binary.get())
        defer { fixture.stop() }
        func dump(_ format: String) throws -> String {
            let result = try swiftprof("dump", "--no-kernel", "--format", format, "\(fixture.pid)")
            #expect(result.status == 0, "\(format): \(result.stderr)")
            return result.stdout
        }
        let traceback = try dump("traceback")
        #expect(traceback.split(separator: "\n").filter { $0.hasPrefix("thread ") }.count == 1, "\(traceback)")
        #expect(!traceback.split(separator: "\n").contains { $0.hasPrefix("1 @") || $0.hasPrefix("2 @") }, "\(traceback)")
        let folded = try dump("folded")
        #expect(folded.split(separator: "\n").count == 1, "\(folded)")
        // The human formats show a control character as U+FFFD: no line, cell or XML node ends early.
        for format in ["flamegraph", "layers", "mermaid"] {
            let output = try dump(format)
            let hash = format == "mermaid" ? "#35;" : "#"  // Mermaid's own escape for "#"
            #expect(output.contains("x\u{FFFD}1 @ 0x1\u{FFFD}\(hash)\u{FFFD}0x2"), "\(format): \(output)")
            #expect(!output.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" && $0 != "\t" }, "\(format)")
        }
        // JSON keeps the exact bytes.
        let json = try JSONSerialization.jsonObject(with: Data(try dump("json").utf8)) as? [String: Any]
        let functions = ((json?["records"] as? [[String: Any]]) ?? []).flatMap { ($0["frames"] as? [[String: Any]]) ?? [] }
            .compactMap { $0["function"] as? String }
        #expect(functions.contains(Self.function), "\(functions)")
    }
}
