// `--format trace`: a sampled run as Chrome's Trace Event Format (JSON), what
// Perfetto (ui.perfetto.dev) and chrome://tracing open: a track per thread, named
// by the thread, and a process per process sampled. On each track, the thread's
// state is the outermost slice (running, runnable: waiting for a CPU, or sleeping
// in a system call) and its
// frames are nested below it, outermost first; consecutive ticks at the same
// place are one slice, and a frame that stays on the stack stays one slice while
// the frames below it change, as a flame chart draws it. Times are the ticks'
// own (CLOCK_MONOTONIC, from the run's start), in microseconds.
import FoundationEssentials

public struct TraceEventsWriter: Sendable {
    public init() {}

    struct File: Encodable {
        var traceEvents: [Event]
        var displayTimeUnit = "ms"
        var otherData: [String: String]
    }

    struct Event: Encodable {
        var name: String
        var ph: String
        var cat: String?
        var ts: Double?
        var dur: Double?
        var pid: Int32
        var tid: Int32
        var args: [String: String]?
    }

    /// One level of a track's nesting: the state, or a frame.
    private struct Level: Equatable {
        var name: String
        var category: String
        var module: String
    }

    public func write(_ document: ProfileDocument) -> String {
        guard let timeline = document.timeline else { return "" }
        var events: [Event] = []
        let levels = timeline.stacks.map(Self.levels)
        var named: Set<Int32> = []
        for track in timeline.tracks {
            let pid = track.process?.pid ?? document.pid ?? 0
            if named.insert(pid).inserted {
                let process = track.process.map { "\($0.commandLine) (\($0.pid))" } ?? document.pid.map { "process \($0)" } ?? "process"
                events.append(Event(name: "process_name", ph: "M", pid: pid, tid: 0, args: ["name": process]))
            }
            events.append(Event(name: "thread_name", ph: "M", pid: pid, tid: track.tid,
                                args: ["name": track.name.isEmpty ? "thread \(track.tid)" : "\(track.name) (\(track.tid))"]))
            var open: [(level: Level, start: UInt64)] = []
            var lastEnd: UInt64 = 0
            func close(from depth: Int, at time: UInt64) {
                for (level, start) in open[depth...].reversed() {
                    events.append(Event(name: level.name, ph: "X", cat: level.category, ts: Self.microseconds(start),
                                        dur: Self.microseconds(time - start), pid: pid, tid: track.tid,
                                        args: level.module.isEmpty ? nil : ["module": level.module]))
                }
                open.removeSubrange(depth...)
            }
            for slice in track.slices {
                var wanted = levels[slice.stack]
                if slice.waitingForCPU, !wanted.isEmpty { wanted[0].name = "runnable" }
                var common = 0
                if slice.start == lastEnd {
                    while common < open.count && common < wanted.count && open[common].level == wanted[common] { common += 1 }
                }
                close(from: common, at: lastEnd)
                open += wanted[common...].map { ($0, slice.start) }
                lastEnd = slice.end
            }
            close(from: 0, at: lastEnd)
        }
        var other = ["exporter": "swiftprof \(SwiftProfVersion.current)",
                     "startUnixNanoseconds": String(timeline.startUnixNanoseconds)]
        if let command = document.command { other["command"] = command }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let file = File(traceEvents: events, otherData: other)
        return String(decoding: (try? encoder.encode(file)) ?? Data(), as: UTF8.self) + "\n"
    }

    /// The state, then the frames outermost first (an inlined function inside its caller).
    private static func levels(_ stack: ThreadStack) -> [Level] {
        let frames = stack.locations.reversed().flatMap { location in
            location.lines.reversed().map { line in
                Level(name: Location.displayName(line, of: location), category: location.isKernel ? "kernel" : "frame",
                      module: location.module)
            }
        }
        return [Level(name: stateName(stack.state, wait: ThreadWaits.waitName(stack.locations, state: stack.state)),
                      category: "state", module: "")] + frames
    }

    /// "running", "sleeping in read", "sleeping in futex (mutex)": the wait named where
    /// it is one for another thread.
    static func stateName(_ state: ThreadState?, wait: String?) -> String {
        guard let state else { return "unknown state" }
        if state.code == "R" { return "running" }
        return state.codeName + (state.systemCall.map { " in \($0.name)" } ?? "") + (wait.map { " (\($0))" } ?? "")
    }

    private static func microseconds(_ nanoseconds: UInt64) -> Double { Double(nanoseconds / 1_000) + Double(nanoseconds % 1_000) / 1_000 }
}
