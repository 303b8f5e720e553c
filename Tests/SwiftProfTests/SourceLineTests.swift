// file:line and inlined frames for binaries whose compiler wrote no .debug_aranges
// (swiftc, clang), checked frame by frame against binutils' addr2line -i, which
// finds compile units by their own ranges and is independent of libdw.
import Foundation
import Testing

@Suite(.serialized)
struct SourceLineTests {
    static let swiftSource = "Fixtures/SwiftParked/main.swift"

    @Test func swiftDebugBuild() throws {
        try expectSwiftLines(Fixture.swiftExecutable)
    }

    @Test func swiftOptimizedBuild() throws {
        let binary = try FixtureBuild.optimizedSwift()
        let checked = try expectSwiftLines(binary)
        // -O inlines ttlLoop into park: both frames are there, the caller at its call.
        let call = "main.swift:\(sourceLine(Self.swiftSource, containing: "        ttlLoop()"))"
        #expect(checked.contains { $0.hasSuffix(call) }, "\(checked)")
    }

    @Test func clangBuild() throws {
        let binary = try FixtureBuild.executable("parked", clang: true)
        let fixture = try Fixture(binary)
        defer { fixture.stop() }
        let result = try swiftprof("dump", "--no-kernel", "\(fixture.pid)")
        #expect(result.status == 0, "\(result.stderr)")
        try Self.expectSameAsAddr2line(result.stdout, binary: binary, pid: fixture.pid, atLeast: 10)
        let profile = try parseProfile(result.stdout)
        let source = "Fixtures/c/parked.c"
        #expect(profile.record(containing: "worker_wait")?.frame("worker_wait")?.line
                == sourceLine(source, containing: "pthread_cond_wait(&never, &lock)"))
        #expect(profile.record(containing: "sleep_at_depth")?.frame("sleep_at_depth")?.line
                == sourceLine(source, containing: "for (;;) nanosleep("))
    }

    /// The Swift fixture's frames against addr2line; its two sleeping functions at their lines.
    @discardableResult
    private func expectSwiftLines(_ binary: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String] {
        let fixture = try Fixture(binary)
        defer { fixture.stop() }
        // Every frame addr2line sees: thunks too.
        let result = try swiftprof("dump", "--no-kernel", "--swift-names", "full", "\(fixture.pid)")
        #expect(result.status == 0, "\(result.stderr)", sourceLocation: sourceLocation)
        let checked = try Self.expectSameAsAddr2line(result.stdout, binary: binary, pid: fixture.pid, atLeast: 4,
                                                     sourceLocation: sourceLocation)
        let lines = try parseProfile(result.stdout).records.flatMap { $0.locations.flatMap(\.lines) }
        let ttl = lines.first { $0.function.contains("Store.ttlLoop()") }
        #expect(ttl?.file.hasSuffix(Self.swiftSource) == true, "\(lines)", sourceLocation: sourceLocation)
        #expect(ttl?.line == sourceLine(Self.swiftSource, containing: "while true { nanosleep(&period"), sourceLocation: sourceLocation)
        let task = lines.first { $0.function.contains("blockInTask(period: Swift.Int) async") }
        #expect(task?.line == sourceLine(Self.swiftSource, containing: "while true { nanosleep(&time"), sourceLocation: sourceLocation)
        return checked
    }

    /// Every frame in `binary`'s own code: the file:line chain at its address (the
    /// inlined frames, innermost first, then the function they are inlined into) must
    /// be addr2line -i's. Returns the chains' entries checked.
    @discardableResult
    static func expectSameAsAddr2line(_ text: String, binary: String, pid: Int32, atLeast minimum: Int,
                                      sourceLocation: SourceLocation = #_sourceLocation) throws -> [String] {
        let maps = try String(contentsOfFile: "/proc/\(pid)/maps", encoding: .utf8)
        let baseText = try #require(maps.split(separator: "\n").first { $0.hasSuffix(binary) }?.split(separator: "-").first,
                                    sourceLocation: sourceLocation)
        let base = try #require(UInt64(baseText, radix: 16), sourceLocation: sourceLocation)
        let end = maps.split(separator: "\n").filter { $0.hasSuffix(binary) }
            .compactMap { $0.split(separator: " ").first?.split(separator: "-").last.flatMap { UInt64($0, radix: 16) } }.max() ?? base

        // Files under the package compared relative to it.
        let root = Paths.packageRoot.path + "/"
        func unrooted(_ path: String) -> String { path.hasPrefix(root) ? String(path.dropFirst(root.count)) : path }
        // Ours: each location's lines, innermost first, as file:line.
        var chains: [UInt64: [String]] = [:]
        var order: [UInt64] = []
        for location in try parseProfile(text, sourceLocation: sourceLocation).records.flatMap(\.locations)
        where location.address >= base && location.address < end && chains[location.address] == nil {
            order.append(location.address)
            chains[location.address] = location.lines.map { unrooted("\($0.file.isEmpty ? "??" : $0.file):\($0.line)") }
        }
        let addresses = order.map { "0x" + String($0 - base, radix: 16) }
        let reference = try run("addr2line", ["-a", "-i", "-e", binary] + addresses)
        #expect(reference.status == 0, "\(reference.stderr)", sourceLocation: sourceLocation)
        var theirs: [String: [String]] = [:]
        var current = ""
        for line in reference.stdout.split(separator: "\n") {
            if line.hasPrefix("0x") {
                current = "0x" + String(UInt64(line.dropFirst(2), radix: 16) ?? 0, radix: 16)
                continue
            }
            // "file:?" is addr2line's line 0; a discriminator is not part of the line.
            let plain = line.split(separator: " (discriminator").first.map(String.init) ?? String(line)
            let numbered = plain.hasSuffix(":?") ? String(plain.dropLast()) + "0" : plain
            theirs[current, default: []].append(unrooted(numbered))
        }
        var checked: [String] = []
        for address in order {
            let key = "0x" + String(address - base, radix: 16)
            #expect(chains[address] == theirs[key], "frame at \(key) in \(binary)", sourceLocation: sourceLocation)
            checked += chains[address] ?? []
        }
        let withLines = checked.filter { !$0.hasPrefix("??") && !$0.hasSuffix(":0") }
        #expect(withLines.count >= minimum, "only \(withLines) have a line:\n\(text)", sourceLocation: sourceLocation)
        return checked
    }
}
