// `attach --push URL`: the profile uploaded to a Pyroscope-style ingest endpoint,
// once at the end or every --push-interval while attached (continuous
// profiling). Uploads go out on a thread of their own, so a slow or failing
// server never delays a tick; each is retried with backoff and reported.
import ArgumentParser
import Glibc
import SwiftProf
import SwiftProfHTTP
import SwiftProfServe

struct PushOptionGroup: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Upload the profile to a Pyroscope-style server at URL (POST URL/ingest, format pprof); the local output is still written.", valueName: "URL"))
    var push: String?

    @Option(name: .long, parsing: .unconditional,
            help: ArgumentHelp("With --push: upload each stretch of TIME while attached (continuous profiling) instead of once at the end.", valueName: "TIME"),
            transform: { text in
                guard let interval = Duration(argument: text), interval.nanoseconds >= 1_000_000_000 else {
                    throw ValidationError("--push-interval takes a time of at least 1s (15s, 1m)")
                }
                return interval
            })
    var pushInterval: Duration?

    @Option(name: .long, help: ArgumentHelp("With --push: the application name, with labels if wanted (server{region=eu}); default: the executable's name.", valueName: "NAME"))
    var pushName: String?

    func validate() throws {
        if push == nil && (pushInterval != nil || pushName != nil) {
            throw ValidationError("--push-interval and --push-name go with --push URL")
        }
        if let push, case .failure(let error) = IngestEndpoint.parse(push) { throw ValidationError("--push: \(error)") }
        if let pushName, pushName.isEmpty || pushName.contains(where: { $0.isWhitespace || $0.isNewline }) {
            throw ValidationError("--push-name must be a name without spaces (app or app{key=value})")
        }
    }

    /// The uploads of a run, or nil without --push. `pid` nil: several processes,
    /// each process name a series of its own.
    func session(pid: Int32?, rate: Double, mode: SamplingMode) -> PushSession? {
        guard let push, case .success(let endpoint) = IngestEndpoint.parse(push) else { return nil }
        return PushSession(line: IngestQueue(endpoint: endpoint, report: { warn($0) }),
                           name: pid.map { pushName ?? PushSession.applicationName(pid: $0) }, rate: rate, mode: mode)
    }
}

/// The uploads of one run: each stretch's samples as a profile of its own. Of
/// several processes, one profile a stretch for each process name (nginx's master
/// and workers together), each sample labelled with its pid, as a fleet's agent
/// sends them: a series a program, whichever processes run it.
final class PushSession: Sendable {
    let line: IngestQueue
    /// The series; nil: each process's name.
    let name: String?
    let rate: Double
    let mode: SamplingMode

    init(line: IngestQueue, name: String?, rate: Double, mode: SamplingMode) {
        self.line = line
        self.name = name
        self.rate = rate
        self.mode = mode
    }

    /// The executable's file name, kept to what an application name may hold (the
    /// target chose it): letters, digits, '.', '_' and '-'.
    static func applicationName(pid: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let length = readlink("/proc/\(pid)/exe", &buffer, buffer.count)
        let path = length > 0 ? String(decoding: buffer[..<length], as: UTF8.self) : ""
        var base = path.split(separator: "/").last.map(String.init) ?? ""
        if base.hasSuffix(" (deleted)") { base.removeLast(" (deleted)".count) }
        return seriesName(base)
    }

    /// A name the target chose kept to what an application name may hold.
    static func seriesName(_ base: String) -> String {
        let kept = String(base.unicodeScalars.map { scalar -> Character in
            scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || "._-".unicodeScalars.contains(scalar))
                ? Character(scalar) : "_"
        })
        return kept.isEmpty ? "process" : kept
    }

    /// Queues the upload of one stretch of samples: one profile, or one a process name.
    func upload(records: [Record], memoryMapLines: [String], startUnixNanoseconds: Int64, durationNanoseconds: Int64) {
        guard !records.isEmpty else { return }
        guard let name else {
            let byName = Dictionary(grouping: records) { Self.seriesName($0.processes.first?.name ?? "") }
            for (name, records) in byName.sorted(by: { $0.key < $1.key }) {
                enqueue(records: records, memoryMapLines: [], name: name, startUnixNanoseconds: startUnixNanoseconds,
                        durationNanoseconds: durationNanoseconds)
            }
            return
        }
        enqueue(records: records, memoryMapLines: memoryMapLines, name: name, startUnixNanoseconds: startUnixNanoseconds,
                durationNanoseconds: durationNanoseconds)
    }

    private func enqueue(records: [Record], memoryMapLines: [String], name: String, startUnixNanoseconds: Int64,
                         durationNanoseconds: Int64) {
        let document = ProfileDocument(records: records, memoryMapLines: memoryMapLines)
        let profile = PprofProto.write(document, sampledTime: .init(mode: mode, rate: rate, durationNanoseconds: durationNanoseconds,
                                                                    startUnixNanoseconds: startUnixNanoseconds))
        let from = startUnixNanoseconds / 1_000_000_000
        let until = (startUnixNanoseconds + durationNanoseconds + 999_999_999) / 1_000_000_000
        let upload = IngestUpload(name: name, fromUnixSeconds: from, untilUnixSeconds: max(until, from + 1),
                                  sampleRate: Int(rate.rounded()), profile: profile)
        line.enqueue(upload)
    }

    /// Each interval's samples handed to the uploads (`--push-interval`).
    var onInterval: @Sendable (IntervalProfile) -> Void {
        { [self] stretch in
            upload(records: stretch.records, memoryMapLines: stretch.memoryMapLines, startUnixNanoseconds: stretch.startUnixNanoseconds,
                   durationNanoseconds: stretch.durationNanoseconds)
        }
    }

    /// At a run's end: the whole run uploaded when it was not uploaded interval by
    /// interval, then every queued upload (and its retries) waited for; how many failed.
    func finish(_ result: SamplingResult, uploadedByInterval: Bool) -> Int {
        if !uploadedByInterval {
            upload(records: result.document.records, memoryMapLines: result.document.memoryMapLines ?? [],
                   startUnixNanoseconds: result.startUnixNanoseconds, durationNanoseconds: Int64(result.progress.elapsedNanoseconds))
        }
        return finish()
    }

    /// Waits for every queued upload (and its retries); how many failed.
    func finish() -> Int { line.finish() }
}
