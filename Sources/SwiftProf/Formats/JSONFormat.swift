// `--format json`: the whole profile as JSON, schema "swiftprof-profile/1"
// (documented in README.md and Fixtures/schemas/swiftprof-profile-1.schema.json).
// Every frame is one object; the frames of one location are consecutive, all
// but the last marked "inlined" (they were inlined into the one after them).
import FoundationEssentials

public enum JSONFormat {
    public static let schema = "swiftprof-profile/1"

    struct File: Codable {
        var schema: String
        var profile: String
        var pid: Int32?
        var total: Int
        var records: [RecordJSON]
        var threads: [ThreadJSON]
        var failures: [FailureJSON]
        var memoryMap: [String]?
        var comments: [String]?
    }

    struct RecordJSON: Codable {
        var count: Int
        var threads: [Int32]
        var names: [String]
        var state: StateJSON?
        var truncated: String?
        var frames: [FrameJSON]
        /// A goroutine record's profiler labels.
        var labels: [String: String]?
        /// Where a capture spans several processes: its threads' process (each, when merged).
        var processes: [ProcessJSON]?
    }

    struct ProcessJSON: Codable {
        var pid: Int32
        /// What ps shows.
        var command: String
        /// The pid it sees itself by, in a PID namespace of its own.
        var namespacePid: Int32?
    }

    struct ThreadJSON: Codable {
        var tid: Int32
        var name: String
        var state: StateJSON?
        var truncated: String?
        var frames: [FrameJSON]
        var labels: [String: String]?
        var process: ProcessJSON?
    }

    struct StateJSON: Codable {
        var code: String
        var name: String
        var syscall: String?
        var arguments: [String]?
        var wchan: String?
        var blockedNanoseconds: UInt64?
        /// The ids of the Swift tasks the thread runs.
        var swiftTasks: [UInt64]?
        /// What the blocked thread waits for, and who holds it.
        var wait: String?
    }

    struct FrameJSON: Codable {
        var address: String
        var module: String
        var moduleBias: String
        var function: String
        var offset: String
        var file: String
        var line: Int
        var inlined: Bool
        var layer: String?
    }

    struct FailureJSON: Codable {
        var tid: Int32
        var reason: String
    }

    public static func write(_ document: ProfileDocument, classifier: Classifier = Classifier()) -> String {
        let file = File(
            schema: schema, profile: document.profileName, pid: document.pid, total: document.total,
            records: document.records.map { record in
                RecordJSON(count: record.count, threads: record.threadIDs, names: record.threadNames,
                           state: record.state.map(StateJSON.init), truncated: record.truncation,
                           frames: frames(record.locations, layers: classifier.layers(of: record.locations, inSyscall: record.state?.systemCall != nil)),
                           labels: record.labels.isEmpty ? nil : record.labels,
                           processes: record.processes.isEmpty ? nil : record.processes.map(ProcessJSON.init))
            },
            threads: document.threads.map { thread in
                ThreadJSON(tid: thread.tid, name: thread.name, state: thread.state.map(StateJSON.init),
                           truncated: thread.truncation,
                           frames: frames(thread.locations, layers: classifier.layers(of: thread.locations, inSyscall: thread.state?.systemCall != nil)),
                           labels: thread.labels.isEmpty ? nil : thread.labels, process: thread.process.map(ProcessJSON.init))
            },
            failures: document.failures.map { FailureJSON(tid: $0.tid, reason: $0.reason) },
            memoryMap: document.memoryMapLines, comments: document.comments.isEmpty ? nil : document.comments)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(file)) ?? Data()
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    public static func read(_ text: String) throws(FormatError) -> ProfileDocument {
        let file: File
        do {
            file = try JSONDecoder().decode(File.self, from: Data(text.utf8))
        } catch {
            throw FormatError(line: lineOf(error, in: text), reason: "JSON: \(describe(error))")
        }
        guard file.schema == schema else {
            throw FormatError(line: 1, reason: "schema \"\(file.schema)\" is not \(schema)")
        }
        var document = ProfileDocument(profileName: file.profile, pid: file.pid, records: [],
                                       memoryMapLines: file.memoryMap,
                                       failures: file.failures.map { ThreadFailure(tid: $0.tid, reason: $0.reason) })
        document.comments = file.comments ?? []
        for record in file.records {
            guard record.count > 0, record.count <= Record.maximumCount else {
                throw FormatError(line: 1, reason: "a record with count \(record.count)")
            }
            var read = Record(count: record.count, locations: try locations(record.frames), truncation: record.truncated,
                              threadIDs: record.threads, state: try record.state.map(state), threadNames: record.names)
            read.labels = record.labels ?? [:]
            read.processes = record.processes?.map(\.identity) ?? []
            document.records.append(read)
        }
        for thread in file.threads {
            var read = ThreadStack(tid: thread.tid, name: thread.name, locations: try locations(thread.frames),
                                   truncation: thread.truncated, state: try thread.state.map(state))
            read.labels = thread.labels ?? [:]
            read.process = thread.process?.identity
            document.threads.append(read)
        }
        guard document.total == file.total else {
            throw FormatError(line: 1, reason: "total \(file.total) but the records count \(document.total)")
        }
        return document
    }

    private static func frames(_ locations: [Location], layers: [[Layer]]) -> [FrameJSON] {
        zip(locations, layers).flatMap { location, layers in
            zip(location.lines, layers).enumerated().map { index, pair in
                FrameJSON(address: hex(location.address), module: location.module, moduleBias: hex(location.moduleBias),
                          function: pair.0.function, offset: hex(pair.0.offset), file: pair.0.file, line: pair.0.line,
                          inlined: index < location.lines.count - 1, layer: pair.1.rawValue)
            }
        }
    }

    private static func locations(_ frames: [FrameJSON]) throws(FormatError) -> [Location] {
        var result: [Location] = []
        var pending: [FrameLine] = []
        for frame in frames {
            guard let address = parseHex(frame.address), let bias = parseHex(frame.moduleBias),
                  let offset = parseHex(frame.offset) else {
                throw FormatError(line: 1, reason: "frame \"\(frame.function)\": addresses must be 0x-prefixed hex")
            }
            pending.append(FrameLine(function: frame.function, offset: offset, file: frame.file, line: frame.line))
            if !frame.inlined {
                result.append(Location(address: address, moduleBias: bias, module: frame.module, lines: pending))
                pending = []
            }
        }
        guard pending.isEmpty else { throw FormatError(line: 1, reason: "the last frame is marked inlined") }
        return result
    }

    private static func state(_ json: StateJSON) throws(FormatError) -> ThreadState {
        guard json.code.count == 1, let code = json.code.first else {
            throw FormatError(line: 1, reason: "state code \"\(json.code)\" is not one letter")
        }
        var state = ThreadState(code: code, systemCall: json.syscall.map { SystemCall(name: $0, arguments: json.arguments ?? []) },
                                wchan: json.wchan ?? "", blockedNanoseconds: json.blockedNanoseconds)
        state.swiftTasks = json.swiftTasks ?? []
        state.wait = json.wait
        return state
    }

    private static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let context):
            let underlying = (context.underlyingError.map { "\($0)" }) ?? ""
            return context.debugDescription + (underlying.isEmpty ? "" : " (\(underlying))")
        case DecodingError.keyNotFound(let key, let context):
            return "missing \"\(key.stringValue)\" at \(path(context.codingPath))"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            return "\(context.debugDescription) at \(path(context.codingPath))"
        default:
            return "\(error)"
        }
    }

    private static func path(_ keys: [any CodingKey]) -> String {
        keys.isEmpty ? "the top" : keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
    }

    /// The line a parse error names ("line 3, column 7" or "around line 3"), else 1.
    private static func lineOf(_ error: any Error, in text: String) -> Int {
        let description = "\(error)"
        guard let range = description.firstRange(of: "line ") else { return 1 }
        return Int(description[range.upperBound...].prefix { $0.isNumber }) ?? 1
    }
}

extension JSONFormat.StateJSON {
    init(_ state: ThreadState) {
        self.init(code: String(state.code), name: state.codeName, syscall: state.systemCall?.name,
                  arguments: state.systemCall?.arguments, wchan: state.wchan.isEmpty ? nil : state.wchan,
                  blockedNanoseconds: state.blockedNanoseconds, swiftTasks: state.swiftTasks.isEmpty ? nil : state.swiftTasks,
                  wait: state.wait)
    }
}

extension JSONFormat.ProcessJSON {
    init(_ process: ProcessIdentity) {
        self.init(pid: process.pid, command: process.commandLine, namespacePid: process.namespacePID)
    }

    var identity: ProcessIdentity { ProcessIdentity(pid: pid, commandLine: command, name: "", namespacePID: namespacePid) }
}
