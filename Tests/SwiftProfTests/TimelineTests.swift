// `--format trace`: a sampled run as Chrome's Trace Event Format, parsed back and
// checked thread by thread against what the fixture does: hot.c's burner spins
// for the whole run, 3/4 of its time in hot_function and 1/4 in warm_function
// (its own construction); its main thread is blocked in read for the whole run.
import Foundation
import Testing

@Suite(.serialized) struct TimelineTests {
    struct Event: Decodable {
        var name: String
        var ph: String
        var cat: String?
        var ts: Double?
        var dur: Double?
        var pid: Int32
        var tid: Int32
        var args: [String: String]?
    }

    struct File: Decodable {
        var traceEvents: [Event]
        var otherData: [String: String]
    }

    @Test func aThreadsTimeIsWhereItWasTickByTick() throws {
        let fixture = try Fixture.c("hot")
        defer { fixture.stop() }
        let seconds = 2.0
        let result = try swiftprof("attach", "\(fixture.pid)", "--duration", "\(seconds)s", "--format", "trace")
        #expect(result.status == 0, "\(result.stderr)")
        let file = try JSONDecoder().decode(File.self, from: Data(result.stdout.utf8))
        let names = Dictionary(file.traceEvents.filter { $0.ph == "M" && $0.name == "thread_name" }.map { ($0.tid, $0.args?["name"] ?? "") },
                               uniquingKeysWith: { a, _ in a })
        let burner = try #require(names.first { $0.value.hasPrefix("burner ") }?.key, "\(names)")
        #expect(names[fixture.pid] == "hot (\(fixture.pid))", "\(names)")
        #expect(file.traceEvents.contains { $0.ph == "M" && $0.name == "process_name" && $0.pid == fixture.pid })
        let slices = Dictionary(grouping: file.traceEvents.filter { $0.ph == "X" }, by: \.tid)
        for (tid, events) in slices {
            // Each thread's states follow each other without overlapping, and every frame
            // lies inside one of them: slices nest as a flame chart's do.
            let states = events.filter { $0.cat == "state" }.sorted { $0.ts! < $1.ts! }
            for (earlier, later) in zip(states, states.dropFirst()) { #expect(earlier.ts! + earlier.dur! <= later.ts! + 0.001) }
            for frame in events where frame.cat != "state" {
                #expect(states.contains { $0.ts! <= frame.ts! && frame.ts! + frame.dur! <= $0.ts! + $0.dur! + 0.001 },
                        "thread \(tid): \(frame) outside its states")
            }
            #expect(states.allSatisfy { $0.ts! + $0.dur! <= seconds * 1e6 + 50_000 }, "thread \(tid): \(states)")
        }
        // Blocked all along: one state slice, and main's frames one slice each.
        let main = try #require(slices[fixture.pid])
        #expect(main.filter { $0.cat == "state" }.map(\.name) == ["sleeping in read"], "\(main)")
        #expect(main.filter { $0.name == "main" }.count == 1)
        // On a CPU all along: running for the whole span, spin_work under hot_function
        // for 3/4 of it, as the fixture spends it (at 100 Hz for 2 s, about 190 ticks:
        // 4 standard deviations of a share of 0.75 are 0.13).
        let spinning = try #require(slices[burner])
        let running = spinning.filter { $0.cat == "state" && ["running", "runnable"].contains($0.name) }.reduce(0) { $0 + $1.dur! }
        let span = spinning.filter { $0.cat == "state" }.reduce(0) { $0 + $1.dur! }
        #expect(running / span > 0.97, "\(spinning.filter { $0.cat == "state" })")
        let hot = spinning.filter { $0.name == "hot_function" }.reduce(0) { $0 + $1.dur! }
        let warm = spinning.filter { $0.name == "warm_function" }.reduce(0) { $0 + $1.dur! }
        #expect(abs(hot / (hot + warm) - 0.75) < 0.13, "hot \(hot) us, warm \(warm) us")
        #expect((hot + warm) / span > 0.9, "hot \(hot) us, warm \(warm) us of \(span)")
        fixture.expectRunning()

        // A snapshot has no time to show.
        #expect(try swiftprof("dump", "\(fixture.pid)", "--format", "trace").status == 64)
    }

    /// Runnable is not running: four threads spinning on two CPUs each run about half
    /// the time and wait for a CPU the rest. The truth is the fixture's own CPU time
    /// over its wall time (hot.c's report): the share of each thread's state slices
    /// that says running must match it. At 100 Hz for 2 s, 200 ticks a thread, 800 in
    /// all: the share's standard deviation is under 0.02 (ticks in a row are not
    /// independent: the scheduler's slices are 4 ms and more); 0.08 is four of them.
    @Test func runnableIsWaitingForACPU() throws {
        let threads = 2 * sysconf(Int32(_SC_NPROCESSORS_ONLN))
        let fixture = try Fixture.c("hot", arguments: ["\(threads)"])
        defer { fixture.stop() }
        _ = try #require(fixture.ask("report"))
        let result = try swiftprof("attach", "\(fixture.pid)", "--duration", "2s", "--format", "trace")
        let after = try #require(fixture.ask("report"))
        #expect(result.status == 0, "\(result.stderr)")
        let words = after.split(separator: " ")
        let (seconds, cpu) = (try #require(Double(words[3])), try #require(Double(words[5])))
        let truth = cpu / seconds / Double(threads)
        let file = try JSONDecoder().decode(File.self, from: Data(result.stdout.utf8))
        let burners = Set(file.traceEvents.filter { $0.ph == "M" && $0.name == "thread_name" && $0.args?["name"]?.hasPrefix("burner ") == true }.map(\.tid))
        #expect(burners.count == threads, "\(burners)")
        let states = file.traceEvents.filter { $0.ph == "X" && $0.cat == "state" && burners.contains($0.tid) }
        let time = { (name: String) in states.filter { $0.name == name }.reduce(0) { $0 + $1.dur! } }
        let (running, runnable) = (time("running"), time("runnable"))
        #expect(abs(running + runnable - states.reduce(0) { $0 + $1.dur! }) < 1, "\(Set(states.map(\.name)))")
        #expect(abs(running / (running + runnable) - truth) < 0.08, "running \(running / (running + runnable)), the fixture's \(truth)")
        fixture.expectRunning()
    }

    /// Of several processes, a process a pid, named as ps names it, each with its threads.
    @Test func severalProcessesAreProcessesOfTheTrace() throws {
        let fixture = try Fixture(try FixtureBuild.executable("tree"), arguments: ["2"])
        defer { fixture.stop() }
        let pids = Set(fixture.readyWords.compactMap { Int32($0) })
        let result = try swiftprof("attach", "--children", "\(fixture.pid)", "--duration", "0.5s", "--format", "trace")
        #expect(result.status == 0, "\(result.stderr)")
        let file = try JSONDecoder().decode(File.self, from: Data(result.stdout.utf8))
        let processes = file.traceEvents.filter { $0.ph == "M" && $0.name == "process_name" }
        #expect(Set(processes.map(\.pid)) == pids, "\(processes)")
        #expect(processes.contains { $0.args?["name"] == "tree: child 1 (\(fixture.readyWords[1]))" }, "\(processes)")
        // Every thread of every process blocked all along: one state slice each.
        let states = file.traceEvents.filter { $0.ph == "X" && $0.cat == "state" }
        #expect(Dictionary(grouping: states, by: \.tid).values.allSatisfy { $0.count == 1 }, "\(states)")
        #expect(Set(states.map(\.pid)) == pids)
    }
}
