// `dump --tasks` under task churn (Fixtures/SwiftAsync churn): task groups and
// detached tasks that end as fast as they start leave their memory behind, freed or
// in reuse. No record may be anything but a live task: the fixture knows how many can
// be alive at once, which it created, at what priorities, and in which functions.
import Foundation
import SwiftProf
import Testing

@Suite(.serialized) struct TaskLivenessTests {
    static var executable: String { Paths.products.appendingPathComponent("SwiftAsync").path }

    /// 4 keepers, the 2 tasks that churn, a group of 8 children, a round of 8 detached tasks.
    static let mostAlive = 4 + 2 + 8 + 8

    @Test func churningTasksLeaveNoDeadOnesInTheDump() throws {
        let fixture = try Fixture(Self.executable, arguments: ["churn"])
        defer { fixture.stop() }
        let executable = try ExecutableRegions(pid: fixture.pid)
        var dumps: [String] = []
        var notShown = 0
        for _ in 0..<20 {
            let result = try swiftprof("dump", "--tasks", "\(fixture.pid)")
            #expect(result.status == 0, "\(result.stderr)")
            dumps.append(result.stdout)
            if result.stdout.contains("; not shown: ") { notShown += 1 }
        }
        // Asked after the dumps: every id the runtime gave out so far is at most this
        // (its counter starts at 1 and the fixture makes every task it runs).
        let answer = try #require(fixture.ask("created"), "no answer")
        let created = try #require(Int(answer.split(separator: " ").last ?? ""), "\(answer)")
        let allowed: Set<String> = ["priority high", "priority medium"]
        for text in dumps {
            let profile = try parseProfile(text)
            let tasks = profile.records.reduce(0) { $0 + $1.count }
            #expect(tasks >= 6 && tasks <= Self.mostAlive, "\(text)")
            // The 4 keepers, parked for good, in every dump: ids 1-4, the first tasks made.
            let keepers = profile.records.filter { $0.functions.contains("SwiftAsync.keep() async") }
            #expect(keepers.map(\.threadIDs) == [[1, 2, 3, 4]], "\(text)")
            #expect(keepers.first?.threadNames == [#""keeper" suspended on a continuation, priority high"#], "\(text)")
            for record in profile.records {
                #expect(record.threadIDs.allSatisfy { $0 >= 1 && Int($0) <= created }, "ids above \(created): \(record.threadIDs)\n\(text)")
                // No priority but the ones the fixture gives (a task just made has none yet).
                for state in record.threadNames {
                    let priority = state.split(separator: ", ").last.map(String.init) ?? ""
                    #expect(!priority.hasPrefix("priority ") || allowed.contains(priority), "\(state)\n\(text)")
                }
                // Every frame is code of the fixture's (a running task's thread may be in a
                // PLT stub, which has no symbol); no task without a frame.
                #expect(!record.locations.isEmpty, "\(text)")
                let outside = record.locations.map(\.address).filter { !executable.contains($0) }
                #expect(outside.isEmpty, "\(outside.map { String($0, radix: 16) }) outside code:\n\(text)")
            }
        }
        // The churn did leave dead task memory behind, and it was counted, not shown.
        #expect(notShown > 0, "no dump said it left anything out")
        fixture.expectRunning()
    }
}

/// The executable mappings of a process, from /proc/PID/maps.
struct ExecutableRegions {
    let ranges: [ClosedRange<UInt64>]

    init(pid: Int32) throws {
        // Read to its end: /proc says its files are empty, and a read by size stops short.
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/proc/\(pid)/maps"))
        defer { try? handle.close() }
        let maps = String(decoding: try handle.readToEnd() ?? Data(), as: UTF8.self)
        ranges = maps.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count > 1, fields[1].contains("x"), let dash = fields[0].firstIndex(of: "-"),
                  let start = UInt64(fields[0][..<dash], radix: 16), let end = UInt64(fields[0][fields[0].index(after: dash)...], radix: 16)
            else { return nil }
            return start...(end - 1)
        }
    }

    func contains(_ address: UInt64) -> Bool { ranges.contains { $0.contains(address) } }
}
