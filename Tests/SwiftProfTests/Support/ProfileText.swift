// Helpers to read swiftprof's output in assertions, through the library's own reader.
import Foundation
import SwiftProf
import Testing

extension Record {
    var functions: [String] { locations.flatMap { $0.lines.map(\.function) } }
    /// Without the kernel frames.
    var userFunctions: [String] { locations.filter { !$0.isKernel }.flatMap { $0.lines.map(\.function) } }
    var kernelFunctions: [String] { locations.filter(\.isKernel).flatMap { $0.lines.map(\.function) } }

    func frame(_ function: String) -> FrameLine? {
        locations.lazy.flatMap(\.lines).first { $0.function == function }
    }
}

func parseProfile(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> PprofTextProfile {
    do { return try PprofTextReader.read(text) } catch {
        Issue.record("unreadable output (\(error)):\n\(text)", sourceLocation: sourceLocation)
        throw error
    }
}

extension PprofTextProfile {
    func record(containing function: String) -> Record? {
        records.first { $0.functions.contains(function) }
    }
}

/// The 1-based line of the first line of a fixture source containing `marker`,
/// so assertions follow the source instead of hard-coding numbers.
func sourceLine(_ file: String, containing marker: String) -> Int {
    let text = (try? String(contentsOf: Paths.packageRoot.appendingPathComponent(file), encoding: .utf8)) ?? ""
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    return (lines.firstIndex { $0.contains(marker) } ?? -1) + 1
}
