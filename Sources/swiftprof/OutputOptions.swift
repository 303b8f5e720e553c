// How a profile is written: shared by every command that prints one.
import ArgumentParser
import Glibc
import SwiftProf

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case pprofText = "pprof-text"
    case layers
    case mermaid
}

enum ColorChoice: String, ExpressibleByArgument, CaseIterable {
    case auto, always, never
}

extension AddressMode: ExpressibleByArgument {}

struct OutputOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Output format: \(OutputFormat.allCases.map(\.rawValue).joined(separator: ", ")).", valueName: "FORMAT"))
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

    @Option(name: .long, help: ArgumentHelp("Colour the layers table: auto (on a terminal, unless NO_COLOR is set), always, never.", valueName: "WHEN"))
    var color: ColorChoice = .auto

    @Option(name: .customLong("layer"), help: ArgumentHelp("Classify matching frames as LAYER (app, runtime or syscall): a glob over object names (libfoo.so*) or function names (mylib::*). Repeatable; comes before the built-in rules.", valueName: "LAYER=PATTERN"))
    var layerRules: [String] = []

    @Option(name: .long, help: ArgumentHelp("Read more --layer rules from FILE, one LAYER=PATTERN a line.", valueName: "FILE"))
    var layerRulesFile: String?

    func validate() throws {
        if memoryMap && addresses == .relative {
            throw ValidationError("--memory-map needs --addresses=absolute: the map lists absolute addresses")
        }
        if markdown && format != .layers { throw ValidationError("--markdown goes with --format layers") }
        if memoryMap && format != .pprofText { throw ValidationError("--memory-map goes with --format pprof-text") }
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

    func render(_ snapshot: Snapshot) throws -> String {
        let records = Grouper.records(snapshot.threads, addresses: addresses)
        switch format {
        case .pprofText:
            return PprofTextWriter(addresses: addresses, memoryMapLines: memoryMap ? snapshot.memoryMapLines : nil,
                                   showsBlockedTime: blockedTime).write(records)
        case .layers:
            return LayersTableWriter(markdown: markdown, color: usesColor)
                .write(InteractionMatrix.rows(records, classifier: try classifier()))
        case .mermaid:
            return MermaidChartWriter().write(InteractionMatrix.rows(records, classifier: try classifier()))
        }
    }

    private var usesColor: Bool {
        switch color {
        case .always: return true
        case .never: return false
        case .auto: return output == nil && isatty(STDOUT_FILENO) != 0 && getenv("NO_COLOR") == nil
        }
    }

    func emit(_ text: String) throws {
        guard let output else {
            if !writeAll(STDOUT_FILENO, text) && errno != EPIPE {
                warn("cannot write standard output: \(String(cString: strerror(errno)))")
                throw ExitStatus.cannotProfile
            }
            return
        }
        let fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0, writeAll(fd, text), close(fd) == 0 else {
            warn("cannot write \(output): \(String(cString: strerror(errno)))")
            throw ExitStatus.cannotProfile
        }
    }
}

struct FileError: Error, CustomStringConvertible {
    let description: String
}

func readTextFile(_ path: String) throws -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw FileError(description: String(cString: strerror(errno))) }
    defer { close(fd) }
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
    return String(decoding: bytes, as: UTF8.self)
}
