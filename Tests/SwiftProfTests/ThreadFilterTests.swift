// --threads GLOB: only the threads named so are captured; the count is checked
// against /proc's own list of names.
import Foundation
import Testing

@Suite(.serialized)
struct ThreadFilterTests {
    /// The fixture's thread names as /proc lists them, one entry a thread.
    static func names(_ pid: Int32) -> [String] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.compactMap { try? String(contentsOfFile: "/proc/\(pid)/task/\($0)/comm", encoding: .utf8) }
            .map { $0.trimmingCharacters(in: .newlines) }
    }

    @Test(arguments: [[], ["--consistent"]])
    func dumpCapturesOnlyTheChosenThreads(_ extra: [String]) throws {
        let fixture = try Fixture.c("parked")
        defer { fixture.stop() }
        let result = try swiftprof(["dump", "--threads", "work*", "--threads", "sleeper", "\(fixture.pid)"] + extra)
        #expect(result.status == 0, "\(result.stderr)")
        let chosen = Self.names(fixture.pid).filter { $0.hasPrefix("work") || $0 == "sleeper" }
        #expect(chosen.count == 9)
        #expect(result.stdout.hasPrefix("thread profile: total \(chosen.count)\n"), "\(result.stdout)")
        #expect(result.stdout.contains("# threads: only those named work* or sleeper (--threads)\n"))
        let profile = try parseProfile(result.stdout)
        #expect(Set(profile.records.flatMap(\.threadNames)) == ["worker", "sleeper"])
        #expect(profile.records.reduce(0) { $0 + $1.count } == chosen.count)
        fixture.expectRunning()
    }

    @Test func attachSamplesOnlyTheChosenThreads() throws {
        let fixture = try Fixture.c("parked")
        defer { fixture.stop() }
        let result = try swiftprof("attach", "--duration", "0.5s", "--threads", "spin*", "--stats", "--thread-names",
                                   "--format", "folded", "\(fixture.pid)")
        #expect(result.status == 0, "\(result.stderr)")
        let stacks = result.stdout.split(separator: "\n")
        #expect(!stacks.isEmpty)
        #expect(stacks.allSatisfy { $0.hasPrefix("spinner;") }, "\(result.stdout)")
        // One thread: as many samples as ticks.
        let ticks = try #require(result.stderr.split(separator: "\n").last { $0.contains(" samples, ") }
            .flatMap { Int($0.dropFirst("swiftprof: ".count).prefix { $0.isNumber }) })
        #expect(stacks.reduce(0) { $0 + (Int($1.split(separator: " ").last ?? "") ?? 0) } == ticks)
        fixture.expectRunning()
    }

    @Test func aPatternMatchingNothingGivesAnEmptyProfile() throws {
        let fixture = try Fixture.c("parked")
        defer { fixture.stop() }
        for extra in [[], ["--consistent"]] {
            let result = try swiftprof(["dump", "--threads", "no-such-thread", "\(fixture.pid)"] + extra)
            #expect(result.status == 0, "\(extra): \(result.stderr)")
            #expect(result.stdout.hasPrefix("thread profile: total 0\n"), "\(extra): \(result.stdout)")
        }
    }
}
