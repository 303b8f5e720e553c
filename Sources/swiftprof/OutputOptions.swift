// How a profile is written: shared by every command that prints one.
import ArgumentParser
import Glibc
import SwiftProf

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case pprofText = "pprof-text"
    case pprof
    case folded
    case speedscope
    case flamegraph
    case traceback
    case json
    case layers
    case mermaid
    case trace
}

enum ColorChoice: String, ExpressibleByArgument, CaseIterable {
    case auto, always, never
}

extension AddressMode: ExpressibleByArgument {}

struct OutputOptions: ParsableArguments {
    // The values are listed by ArgumentParser itself, after the text.
    @Option(name: .long, help: ArgumentHelp("Output format.", valueName: "FORMAT"))
    var format: OutputFormat = .pprofText

    @Option(name: [.customShort("o"), .long], help: ArgumentHelp("Write to FILE instead of standard output.", valueName: "FILE"))
    var output: String?

    @Option(name: .long, help: ArgumentHelp("absolute: addresses as in the target; relative: minus each object's load bias (link-time addresses), and no thread ids or pointer arguments, so that runs compare.", valueName: "absolute|relative"))
    var addresses: AddressMode = .absolute

    @Flag(name: .long, help: "Append the target's memory map (--- Memory map: ---) for go tool pprof.")
    var memoryMap = false

    @Flag(name: .long, help: "Add how long each thread has been blocked to its state line (it changes from run to run).")
    var blockedTime = false

    @Flag(name: .long, help: "With --format layers: a Markdown table.")
    var markdown = false

    @Flag(name: .long, help: "With --format folded: start each stack with the thread's name.")
    var threadNames = false

    @Flag(name: .long, help: "With --format speedscope: one profile for all threads instead of one a thread (a snapshot's; a sampled profile is always one).")
    var mergeThreads = false

    @Option(name: .long, help: ArgumentHelp("Colour the layers table: auto (on a terminal, unless NO_COLOR is set), always, never.", valueName: "WHEN"))
    var color: ColorChoice = .auto

    @Option(name: .customLong("layer"), help: ArgumentHelp("Classify matching frames as LAYER (app, runtime or syscall): a glob over object names (libfoo.so*) or function names (mylib::*). Repeatable; comes before the built-in rules.", valueName: "LAYER=PATTERN"))
    var layerRules: [String] = []

    @Option(name: .long, help: ArgumentHelp("Read more --layer rules from FILE, one LAYER=PATTERN a line.", valueName: "FILE"))
    var layerRulesFile: String?

    /// Whether the format prints addresses (kernel frames then need /proc/kallsyms).
    var printsAddresses: Bool { [.pprofText, .pprof, .json].contains(format) }

    func validate() throws {
        if memoryMap && addresses == .relative {
            throw ValidationError("--memory-map needs --addresses=absolute: the map lists absolute addresses")
        }
        if markdown && format != .layers { throw ValidationError("--markdown goes with --format layers") }
        if memoryMap && format != .pprofText { throw ValidationError("--memory-map goes with --format pprof-text") }
        if threadNames && format != .folded { throw ValidationError("--thread-names goes with --format folded") }
        if mergeThreads && format != .speedscope { throw ValidationError("--merge-threads goes with --format speedscope") }
        if blockedTime && format != .pprofText && format != .json {
            throw ValidationError("--blocked-time goes with --format pprof-text or json: the other formats have no state lines")
        }
        // As gzip refuses: compressed bytes on a terminal are of no use and can upset it.
        if format == .pprof && output == nil && isatty(STDOUT_FILENO) != 0 {
            throw ValidationError("--format pprof writes gzip data: not to a terminal (give -o FILE, or pipe it)")
        }
        for rule in layerRules {
            do { _ = try LayerRule(parsing: rule) } catch { throw ValidationError(error.description) }
        }
    }

    /// The rules of --layer and --layer-rules-file, then the built-in ones.
    func classifier() throws -> Classifier {
        var user: [LayerRule] = []
        if let file = layerRulesFile {
            let text: String
            do { text = try readTextFile(file) } catch {
                warn("cannot read \(file): \(error)")
                throw ExitCode.validationFailure
            }
            do { user += try LayerRules.parseFile(text) } catch {
                warn("\(file): \(error.description)")
                throw ExitCode.validationFailure
            }
        }
        user += layerRules.compactMap { try? LayerRule(parsing: $0) }
        return Classifier(rules: .standard(adding: user))
    }

    func render(_ document: ProfileDocument) throws -> [UInt8] {
        var document = document
        if addresses == .relative {
            // Records sort by their "@" line, which depends on how addresses print; and
            // the comments say how this run went (paths, samples), which a comparison of
            // runs must not see, but for the deadlocks and convoys: the target's state,
            // written without thread ids in relative mode.
            document.records = Grouper.sorted(document.records, addresses: addresses)
            document.comments = document.comments.filter(WaitLines.isWaitLine)
        }
        func text(_ string: String) -> [UInt8] { Array(string.utf8) }
        // Deadlocks, convoys, file-lock waits and a core's fatal signal head the formats
        // for reading (those with comments carry them as comments): what a reader must see first.
        let waits = document.comments.filter { WaitLines.isWaitLine($0) || $0.hasPrefix(CoreSignal.commentPrefix) }
        let waitPreamble = waits.isEmpty ? "" : waits.map { $0 + "\n" }.joined() + "\n"
        switch format {
        case .pprofText:
            return text(PprofTextWriter(profileName: document.profileName, addresses: addresses,
                                        memoryMapLines: memoryMap ? document.memoryMapLines : nil,
                                        showsBlockedTime: blockedTime, comments: document.comments).write(document.records))
        case .pprof:
            // A block profile as Go writes its own: contentions and delay.
            if document.profileName == "contention", let time = document.sampledTime {
                return PprofProto.writeContention(document, sampledTime: time)
            }
            // A sampled run as serve writes one: samples and cpu or wall time.
            if let time = document.sampledTime { return PprofProto.write(document, sampledTime: time) }
            // A snapshot's sample type names what is counted, as Go names its profiles: thread, goroutine, task.
            return PprofProto.write(document, sampleType: document.profileName)
        case .folded:
            return text(FoldedWriter(threadNames: threadNames).write(document))
        case .speedscope:
            return text(SpeedscopeWriter(mergeThreads: mergeThreads).write(document))
        case .flamegraph:
            let title = document.command ?? document.pid.map { "swiftprof dump \($0)" } ?? "swiftprof"
            return text(FlameGraphWriter(title: title, classifier: try classifier()).write(document))
        case .traceback:
            // One block a thread: a file's groups could expand into 2^40 of them.
            guard document.threadStackCount <= ProfileDocument.maximumThreadStacks else {
                warn("--format traceback prints one block a thread: \(document.threadStackCount) is more than "
                     + "\(ProfileDocument.maximumThreadStacks); use pprof-text or folded")
                throw ExitStatus.malformedInput
            }
            return text(waitPreamble + TracebackWriter().write(document))
        case .json:
            return text(JSONFormat.write(document, classifier: try classifier()))
        case .layers:
            return text(waitPreamble + LayersTableWriter(markdown: markdown, color: usesColor, unit: document.unit)
                .write(InteractionMatrix.rows(document.records, classifier: try classifier())))
        case .mermaid:
            return text(MermaidChartWriter(unit: document.unit).write(InteractionMatrix.rows(document.records, classifier: try classifier())))
        case .trace:
            guard document.timeline != nil else {
                warn("--format trace is a timeline of a sampled run: attach or run, not a snapshot or a file")
                throw ExitCode.validationFailure
            }
            return text(TraceEventsWriter().write(document))
        }
    }

    private var usesColor: Bool {
        switch color {
        case .always: return true
        case .never: return false
        case .auto: return output == nil && isatty(STDOUT_FILENO) != 0 && getenv("NO_COLOR") == nil
        }
    }

    func emit(_ bytes: [UInt8]) throws { try writeOutput(bytes, to: output) }
}

/// Writes to FILE, or to standard output when there is none. A regular file is
/// written whole or not at all: into a temporary file beside it, renamed over it
/// once complete (a full disk leaves the old file, not half a profile). A device
/// or a pipe (`-o /dev/stderr`) is written in place.
func writeOutput(_ bytes: [UInt8], to output: String?) throws {
    guard let output else {
        if !writeAll(STDOUT_FILENO, bytes) && errno != EPIPE {
            warn("cannot write standard output: \(String(cString: strerror(errno)))")
            throw ExitStatus.writeFailed
        }
        return
    }
    guard OutputTarget.isRegularOrAbsent(output) else {
        let fd = open(output, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw OutputTarget.cannotCreate(output) }
        let written = writeAll(fd, bytes)
        let failure = errno
        close(fd)
        guard written else {
            warn("cannot write \(output): \(String(cString: strerror(failure)))")
            throw ExitStatus.writeFailed
        }
        return
    }
    let (fd, temporary) = try OutputTarget.temporaryFile(beside: output)
    let written = writeAll(fd, bytes) && fsync(fd) == 0
    let failure = errno
    guard close(fd) == 0, written, rename(temporary, output) == 0 else {
        let reason = String(cString: strerror(written ? errno : failure))
        unlink(temporary)
        warn("cannot write \(output): \(reason)")
        throw ExitStatus.writeFailed
    }
}

/// The output file, checked before any work: a profile that took minutes to sample
/// is not lost to a mistyped directory.
enum OutputTarget {
    /// Creates (and removes) the temporary file the profile will be written to, or
    /// opens a device or pipe for writing: one line and EX_CANTCREAT if it cannot.
    static func check(_ output: String?) throws {
        guard let output else { return }
        guard isRegularOrAbsent(output) else {
            let fd = open(output, O_WRONLY | O_CLOEXEC | O_NONBLOCK)
            // A pipe with no reader yet (ENXIO) may have one by the time the profile is written.
            guard fd >= 0 || errno == ENXIO else { throw cannotCreate(output) }
            if fd >= 0 { close(fd) }
            return
        }
        let (fd, temporary) = try temporaryFile(beside: output)
        close(fd)
        unlink(temporary)
    }

    static func isRegularOrAbsent(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) != 0 || (info.st_mode & S_IFMT) == S_IFREG
    }

    /// A new file in the output's directory, so that the rename cannot cross file systems.
    static func temporaryFile(beside output: String) throws -> (Int32, String) {
        var template = Array((output + ".swiftprof-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw cannotCreate(output) }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        // mkostemp makes it 0600: what open(2) with 0644 would have made, under the umask.
        let mask = umask(0)
        umask(mask)
        _ = fchmod(fd, 0o644 & ~mask)
        return (fd, String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    static func cannotCreate(_ output: String) -> ExitCode {
        warn("cannot write \(output): \(String(cString: strerror(errno)))")
        return ExitStatus.cannotCreateOutput
    }
}

/// Reads a profile file for --input and diff; a missing file or a malformed one
/// ends the command with its own status and one line.
func readProfile(_ path: String) throws -> ProfileDocument {
    let bytes: [UInt8]
    do { bytes = try readFile(path) } catch {
        warn("cannot read \(path): \(error)")
        throw ExitStatus.noInput
    }
    do { return try ProfileReader.read(bytes) } catch {
        warn("\(path): \(error.description)")
        throw ExitStatus.malformedInput
    }
}

struct FileError: Error, CustomStringConvertible {
    let description: String
}

func readFile(_ path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw FileError(description: String(cString: strerror(errno))) }
    defer { close(fd) }
    var info = stat()
    if fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR { throw FileError(description: "it is a directory") }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw FileError(description: String(cString: strerror(errno)))
        }
        if n == 0 { break }
        bytes += chunk[0..<n]
    }
    return bytes
}

func readTextFile(_ path: String) throws -> String {
    String(decoding: try readFile(path), as: UTF8.self)
}
