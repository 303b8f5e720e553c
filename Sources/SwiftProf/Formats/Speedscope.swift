// `--format speedscope`: speedscope's file format
// (https://www.speedscope.app/file-format-schema.json): sampled profiles over
// one shared frame table, one profile a thread, or one for all threads; one a
// process where a capture spans several.
import FoundationEssentials

public struct SpeedscopeWriter: Sendable {
    public var mergeThreads: Bool

    public init(mergeThreads: Bool = false) { self.mergeThreads = mergeThreads }

    struct File: Encodable {
        enum CodingKeys: String, CodingKey {
            case schema = "$schema", shared, profiles, name, activeProfileIndex, exporter
        }
        let schema = "https://www.speedscope.app/file-format-schema.json"
        var shared: Shared
        var profiles: [Profile]
        var name: String
        var activeProfileIndex = 0
        var exporter = "swiftprof \(SwiftProfVersion.current)"
    }

    struct Shared: Encodable { var frames: [Frame] }

    struct Frame: Encodable, Hashable {
        var name: String
        var file: String?
        var line: Int?
    }

    struct Profile: Encodable {
        var type = "sampled"
        var name: String
        var unit = "none"
        var startValue = 0
        var endValue: Int
        var samples: [[Int]]
        var weights: [Int]
    }

    public func write(_ document: ProfileDocument) -> String {
        var frames: [Frame] = []
        var indices: [Frame: Int] = [:]
        func stack(_ locations: [Location]) -> [Int] {
            locations.reversed().flatMap { location in
                location.lines.reversed().map { line in
                    let frame = Frame(name: Location.displayName(line, of: location),
                                      file: line.file.isEmpty ? nil : line.file, line: line.line > 0 ? line.line : nil)
                    if let index = indices[frame] { return index }
                    frames.append(frame)
                    indices[frame] = frames.count - 1
                    return frames.count - 1
                }
            }
        }
        var profiles: [Profile] = []
        if document.records.contains(where: { !$0.processes.isEmpty }) {
            // Several processes: a profile each (a merged record, in one for the processes it merges).
            var order: [[ProcessIdentity]] = []
            var byProcesses: [[ProcessIdentity]: [Record]] = [:]
            for record in document.records {
                if byProcesses[record.processes] == nil { order.append(record.processes) }
                byProcesses[record.processes, default: []].append(record)
            }
            for processes in order.sorted(by: { $0.map(\.pid).lexicographicallyPrecedes($1.map(\.pid)) }) {
                let records = byProcesses[processes]!
                profiles.append(Profile(name: processes.map { "\($0.pid) \($0.commandLine)" }.joined(separator: ", "),
                                        endValue: records.reduce(0) { $0 + $1.count },
                                        samples: records.map { stack($0.locations) }, weights: records.map(\.count)))
            }
        } else if mergeThreads || document.threads.isEmpty {
            let samples = document.records.map { stack($0.locations) }
            profiles.append(Profile(name: "all threads", endValue: document.total, samples: samples,
                                    weights: document.records.map(\.count)))
        } else {
            for thread in document.threads.sorted(by: { $0.tid < $1.tid }) {
                let label = thread.name.isEmpty ? "thread \(thread.tid)" : "thread \(thread.tid) (\(thread.name))"
                profiles.append(Profile(name: label, endValue: 1, samples: [stack(thread.locations)], weights: [1]))
            }
        }
        let name = document.pid.map { "swiftprof \($0)" } ?? "swiftprof"
        let file = File(shared: Shared(frames: frames), profiles: profiles, name: name)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(file)) ?? Data(), as: UTF8.self) + "\n"
    }
}

public enum SwiftProfVersion {
    public static let current = "0.1.0"
}
