// `--format pprof`: a gzipped profile.proto that `go tool pprof` reads without
// the binaries: functions, file:line and inlined frames (one Line each,
// innermost first) are in it, and every mapping says so. Thread state goes
// into string labels (state, syscall, wchan, wait, threads, names), so that
// `-tagfocus syscall=futex` works.
import CSwiftProf
import Glibc

public enum PprofProto {
    /// Labels are strings; these are their keys.
    static let labelKeys = ["state", "syscall", "wchan", "wait", "threads", "names", "truncated", "pid", "process"]

    public static func write(_ document: ProfileDocument, sampleType: String = "thread") -> [UInt8] {
        gzip(encode(document, sampleType: sampleType))
    }

    /// A sampled profile as Go's CPU profile is written: each sample's count and the
    /// time it stands for (count × period), so that `go tool pprof` says "Type: cpu"
    /// (or wall) and shows seconds.
    public static func write(_ document: ProfileDocument, sampledTime: SampledTime) -> [UInt8] {
        gzip(encode(document, sampleType: "samples", sampledTime: sampledTime))
    }

    /// A block profile (`attach --profile block`), as Go writes its own: each sample's
    /// contentions and delay (its ticks times the period), in nanoseconds.
    public static func writeContention(_ document: ProfileDocument, sampledTime: SampledTime) -> [UInt8] {
        gzip(encode(document, sampleType: "contentions", sampledTime: sampledTime, contention: true))
    }

    static func encode(_ document: ProfileDocument, sampleType: String, values: [Int64]? = nil,
                       sampledTime: SampledTime? = nil, contention: Bool = false) -> [UInt8] {
        var strings = StringTable()
        let mappings = Mappings(document.memoryMapLines ?? [])
        var locationIDs: [Location: UInt64] = [:]
        var locations: [Location] = []
        var functionIDs: [FunctionKey: UInt64] = [:]

        var profile = ProtobufWriter()
        let typeIndex = strings.index(sampleType), unitIndex = strings.index("count")
        profile.message(1) { $0.int(1, typeIndex); $0.int(2, unitIndex) }
        let timeIndex = sampledTime.map { strings.index(contention ? "delay" : $0.clock.rawValue) } ?? 0
        let nanosecondsIndex = strings.index("nanoseconds")
        if sampledTime != nil { profile.message(1) { $0.int(1, timeIndex); $0.int(2, nanosecondsIndex) } }
        for (index, record) in document.records.enumerated() {
            let ids = record.locations.map { location -> UInt64 in
                if let id = locationIDs[location] { return id }
                locations.append(location)
                locationIDs[location] = UInt64(locations.count)
                return UInt64(locations.count)
            }
            let labels = self.labels(record)
            let value = values?[index] ?? Int64(record.count)
            let first = contention ? Int64(record.contentions ?? record.count) : value
            profile.message(2) { sample in
                sample.packed(1, ids)
                sample.packed(2, [UInt64(bitPattern: first)]
                              + (sampledTime.map { [UInt64(bitPattern: value &* $0.periodNanoseconds)] } ?? []))
                for (key, text) in labels {
                    let keyIndex = strings.index(key), textIndex = strings.index(text)
                    sample.message(3) { $0.int(1, keyIndex); $0.int(2, textIndex) }
                }
            }
        }
        for (index, mapping) in mappings.all.enumerated() {
            let filename = strings.index(mapping.path)
            profile.message(3) { m in
                m.uint(1, UInt64(index + 1))
                m.uint(2, mapping.start)
                m.uint(3, mapping.end)
                m.uint(4, mapping.offset)
                m.int(5, filename)
                m.bool(7, true); m.bool(8, true); m.bool(9, true); m.bool(10, true)
            }
        }
        var functions: [(FunctionKey, UInt64)] = []
        for (index, location) in locations.enumerated() {
            let lineIDs = location.lines.map { line -> (UInt64, Int64) in
                let key = FunctionKey(name: line.function.isEmpty ? hex(location.address) : line.function, file: line.file)
                if let id = functionIDs[key] { return (id, Int64(line.line)) }
                let id = UInt64(functionIDs.count + 1)
                functionIDs[key] = id
                functions.append((key, id))
                return (id, Int64(line.line))
            }
            let mappingID = mappings.id(for: location)
            profile.message(4) { l in
                l.uint(1, UInt64(index + 1))
                l.uint(2, mappingID)
                l.uint(3, location.address)
                for (function, line) in lineIDs { l.message(4) { $0.uint(1, function); $0.int(2, line) } }
            }
        }
        for (key, id) in functions {
            let name = strings.index(key.name), file = strings.index(key.file)
            profile.message(5) { f in f.uint(1, id); f.int(2, name); f.int(3, name); f.int(4, file) }
        }
        for text in strings.all { profile.string(6, text) }
        if let sampledTime, contention {
            // Go's block profile: the period is one contention.
            profile.int(9, sampledTime.startUnixNanoseconds)
            profile.int(10, sampledTime.durationNanoseconds)
            profile.message(11) { $0.int(1, typeIndex); $0.int(2, unitIndex) }
            profile.int(12, 1)
        } else if let sampledTime {
            profile.int(9, sampledTime.startUnixNanoseconds)
            profile.int(10, sampledTime.durationNanoseconds)
            profile.message(11) { $0.int(1, timeIndex); $0.int(2, nanosecondsIndex) }
            profile.int(12, sampledTime.periodNanoseconds)
        } else {
            profile.message(11) { $0.int(1, typeIndex); $0.int(2, unitIndex) }
            profile.int(12, 1)
        }
        return profile.bytes
    }

    /// What the samples of a sampling run stand for.
    public struct SampledTime: Sendable, Equatable {
        /// cpu: only threads on a CPU were counted (Go's CPU profile); wall: every thread.
        public enum Clock: String, Sendable { case cpu, wall }
        public var clock: Clock
        /// The time one sample stands for: the tick period.
        public var periodNanoseconds: Int64
        public var durationNanoseconds: Int64
        /// When sampling started, since the Unix epoch.
        public var startUnixNanoseconds: Int64

        public init(clock: Clock, periodNanoseconds: Int64, durationNanoseconds: Int64, startUnixNanoseconds: Int64) {
            self.clock = clock
            self.periodNanoseconds = periodNanoseconds
            self.durationNanoseconds = durationNanoseconds
            self.startUnixNanoseconds = startUnixNanoseconds
        }

        /// A sampling run's: each sample stands for one tick period at `rate`, of CPU
        /// time when only threads on a CPU were counted, of wall time otherwise.
        public init(mode: SamplingMode, rate: Double, durationNanoseconds: Int64, startUnixNanoseconds: Int64) {
            self.init(clock: mode == .cpu ? .cpu : .wall, periodNanoseconds: Int64((1e9 / rate).rounded()),
                      durationNanoseconds: durationNanoseconds, startUnixNanoseconds: startUnixNanoseconds)
        }
    }

    private static func labels(_ record: Record) -> [(String, String)] {
        var labels: [(String, String)] = []
        if let state = record.state {
            labels.append(("state", String(state.code)))
            if let call = state.systemCall { labels.append(("syscall", call.name)) }
            if !state.wchan.isEmpty { labels.append(("wchan", state.wchan)) }
            if let wait = state.wait { labels.append(("wait", wait)) }
        }
        if !record.threadIDs.isEmpty { labels.append(("threads", record.threadIDs.map(String.init).joined(separator: ","))) }
        if !record.threadNames.isEmpty { labels.append(("names", record.threadNames.joined(separator: ","))) }
        if let truncation = record.truncation { labels.append(("truncated", truncation)) }
        // A label a process (several for a merged record), as perf and Parca label samples by pid.
        for process in record.processes {
            if process.pid != 0 { labels.append(("pid", String(process.pid))) }
            labels.append(("process", process.commandLine))
        }
        // A goroutine's own labels, as Go's profile carries them (keys of ours go first).
        for key in record.labels.keys.sorted() where !labelKeys.contains(key) { labels.append((key, record.labels[key]!)) }
        return labels
    }

    private struct FunctionKey: Hashable {
        let name: String
        let file: String
    }

    private struct StringTable {
        private var indices: [String: Int64] = ["": 0]
        private(set) var all: [String] = [""]

        mutating func index(_ text: String) -> Int64 {
            if let index = indices[text] { return index }
            all.append(text)
            indices[text] = Int64(all.count - 1)
            return Int64(all.count - 1)
        }
    }

    /// One pprof mapping per mapped file, from the captured /proc/PID/maps; kernel
    /// frames get one of their own.
    private struct Mappings {
        struct Mapping {
            let path: String
            let start: UInt64
            let end: UInt64
            let offset: UInt64
        }

        let all: [Mapping]
        private let map: MemoryMap

        init(_ lines: [String]) {
            map = MemoryMap(parsing: lines.joined(separator: "\n"))
            var byPath: [String: Mapping] = [:]
            var order: [String] = []
            for region in map.regions where region.isExecutable && (region.isFileBacked || region.path == "[vdso]") {
                if let known = byPath[region.path] {
                    byPath[region.path] = Mapping(path: known.path, start: known.start, end: region.end, offset: known.offset)
                } else {
                    let first = map.regions.first { $0.path == region.path } ?? region
                    byPath[region.path] = Mapping(path: region.path, start: first.start, end: region.end, offset: first.offset)
                    order.append(region.path)
                }
            }
            all = order.map { byPath[$0]! } + [Mapping(path: Location.kernelModule, start: 0xffff_8000_0000_0000, end: UInt64.max, offset: 0)]
        }

        func id(for location: Location) -> UInt64 {
            if location.isKernel { return UInt64(all.count) }
            guard let index = all.firstIndex(where: { location.address >= $0.start && location.address < $0.end }) else { return 0 }
            return UInt64(index + 1)
        }
    }

    // MARK: - Reading

    public static func read(_ data: [UInt8]) throws(FormatError) -> ProfileDocument {
        let raw: [UInt8]
        if data.starts(with: [0x1f, 0x8b]) {
            guard let inflated = gunzip(data) else { throw FormatError(line: 0, reason: "pprof: the gzip stream is corrupt or truncated") }
            raw = inflated
        } else {
            raw = data
        }
        do { return try decode(raw) } catch {
            throw FormatError(line: 0, reason: "pprof: byte \(error.offset): \(error.reason)")
        }
    }

    private struct DecodedLocation {
        var address: UInt64 = 0
        var mapping: UInt64 = 0
        var lines: [(function: UInt64, line: Int64)] = []
    }

    private static func decode(_ raw: [UInt8]) throws(ProtobufError) -> ProfileDocument {
        var reader = ProtobufReader(raw[...])
        var strings: [String] = []
        var samples: [(locations: [UInt64], value: Int64, labels: [(UInt64, UInt64)])] = []
        var locations: [UInt64: DecodedLocation] = [:]
        var functions: [UInt64: (name: UInt64, file: UInt64)] = [:]
        var mappings: [UInt64: UInt64] = [:]  // id → filename
        var sampleType: UInt64 = 0
        while let (field, value) = try reader.next() {
            guard case .bytes(let body) = value else { continue }
            var inner = ProtobufReader(body, base: reader.offset - body.count)
            switch field {
            case 1:
                while let (f, v) = try inner.next() { if f == 1 { sampleType = v.integer } }
            case 2:
                var sample: (locations: [UInt64], value: Int64, labels: [(UInt64, UInt64)]) = ([], 0, [])
                while let (f, v) = try inner.next() {
                    switch f {
                    case 1: sample.locations += try ProtobufReader.integers(v, base: inner.offset)
                    case 2:
                        if let first = try ProtobufReader.integers(v, base: inner.offset).first, sample.value == 0 {
                            sample.value = Int64(bitPattern: first)
                        }
                    case 3:
                        guard case .bytes(let labelBody) = v else { continue }
                        var label = ProtobufReader(labelBody, base: inner.offset - labelBody.count)
                        var key: UInt64 = 0, text: UInt64 = 0
                        while let (lf, lv) = try label.next() {
                            if lf == 1 { key = lv.integer } else if lf == 2 { text = lv.integer }
                        }
                        sample.labels.append((key, text))
                    default: break
                    }
                }
                samples.append(sample)
            case 3:
                var id: UInt64 = 0, filename: UInt64 = 0
                while let (f, v) = try inner.next() {
                    if f == 1 { id = v.integer } else if f == 5 { filename = v.integer }
                }
                mappings[id] = filename
            case 4:
                var id: UInt64 = 0
                var location = DecodedLocation()
                while let (f, v) = try inner.next() {
                    switch f {
                    case 1: id = v.integer
                    case 2: location.mapping = v.integer
                    case 3: location.address = v.integer
                    case 4:
                        guard case .bytes(let lineBody) = v else { continue }
                        var line = ProtobufReader(lineBody, base: inner.offset - lineBody.count)
                        var function: UInt64 = 0, number: Int64 = 0
                        while let (lf, lv) = try line.next() {
                            if lf == 1 { function = lv.integer } else if lf == 2 { number = Int64(bitPattern: lv.integer) }
                        }
                        location.lines.append((function, number))
                    default: break
                    }
                }
                locations[id] = location
            case 5:
                var id: UInt64 = 0, name: UInt64 = 0, file: UInt64 = 0
                while let (f, v) = try inner.next() {
                    switch f {
                    case 1: id = v.integer
                    case 2: name = v.integer
                    case 4: file = v.integer
                    default: break
                    }
                }
                functions[id] = (name, file)
            case 6:
                strings.append(RawBytes.decode(body))
            default:
                break
            }
        }
        func string(_ index: UInt64) throws(ProtobufError) -> String {
            guard index < UInt64(strings.count) else {
                throw ProtobufError(offset: reader.offset, reason: "string index \(index) is past the table of \(strings.count)")
            }
            return strings[Int(index)]
        }
        var records: [Record] = []
        for sample in samples where sample.value > 0 {
            guard sample.value <= Int64(Record.maximumCount) else {
                throw ProtobufError(offset: reader.offset, reason: "a sample value of \(sample.value) is too large")
            }
            var record = Record(count: Int(sample.value), locations: [], truncation: nil)
            for id in sample.locations {
                guard let location = locations[id] else {
                    throw ProtobufError(offset: reader.offset, reason: "a sample names location \(id), which is not in the profile")
                }
                var lines: [FrameLine] = []
                for (function, number) in location.lines {
                    guard let known = functions[function] else {
                        throw ProtobufError(offset: reader.offset, reason: "a line names function \(function), which is not in the profile")
                    }
                    lines.append(FrameLine(function: try string(known.name), offset: 0, file: try string(known.file),
                                           line: Int(clamping: number)))
                }
                if lines.isEmpty { lines = [FrameLine(function: "", offset: 0, file: "", line: 0)] }
                let module = try mappings[location.mapping].map(string) ?? ""
                record.locations.append(Location(address: location.address, module: module, lines: lines))
            }
            var labels: [String: String] = [:]
            var pids: [Int32] = [], commandLines: [String] = []
            for (key, text) in sample.labels {
                let (key, text) = (try string(key), try string(text))
                switch key {
                case "pid": pids.append(Int32(text) ?? 0)
                case "process": commandLines.append(text)
                default: labels[key] = text
                }
            }
            // A pid with each process, but where the profile has none (a diff's, by name).
            if pids.count != commandLines.count { pids = Array(repeating: 0, count: commandLines.count) }
            record.processes = zip(pids, commandLines).map { ProcessIdentity(pid: $0, commandLine: $1, name: "") }
            if let code = labels["state"]?.first {
                record.state = ThreadState(code: code, systemCall: labels["syscall"].map { SystemCall(name: $0, arguments: ["…"]) },
                                           wchan: labels["wchan"] ?? "")
                record.state?.wait = labels["wait"]
            }
            record.threadIDs = labels["threads"]?.split(separator: ",").compactMap { Int32($0) } ?? []
            record.threadNames = labels["names"]?.split(separator: ",").map(String.init) ?? []
            record.truncation = labels["truncated"]
            record.labels = labels.filter { !labelKeys.contains($0.key) }
            records.append(record)
        }
        let name = try string(sampleType)
        return ProfileDocument(profileName: name.isEmpty ? "thread" : name,
                               records: Grouper.sorted(records, addresses: .absolute))
    }

    // MARK: - gzip

    static func gzip(_ bytes: [UInt8]) -> [UInt8] {
        var length = 0
        guard let output = bytes.withUnsafeBufferPointer({ sp_gzip($0.baseAddress, $0.count, &length) }) else { return [] }
        defer { free(output) }
        return Array(UnsafeBufferPointer(start: output, count: length))
    }

    /// nil for a corrupt stream or one that would inflate past 512 MiB.
    static func gunzip(_ bytes: [UInt8]) -> [UInt8]? {
        var length = 0
        guard let output = bytes.withUnsafeBufferPointer({ sp_gunzip($0.baseAddress, $0.count, 512 << 20, &length) }) else {
            return nil
        }
        defer { free(output) }
        return Array(UnsafeBufferPointer(start: output, count: length))
    }
}
