// `swiftprof diff BEFORE AFTER`: what changed between two snapshots or profiles.
import ArgumentParser
import SwiftProf

struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Compare two saved snapshots or profiles by symbolized stack (addresses ignored).",
        discussion: "Inputs may be pprof-text, JSON or pprof files, in any mix. Stacks that appeared, vanished or changed count are listed, the largest change first. Exit status, as diff(1)'s: 0 when no stack changed, 1 when some did."
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text, pprof
    }

    @Argument(help: ArgumentHelp("The earlier profile.", valueName: "BEFORE"))
    var before: String

    @Argument(help: ArgumentHelp("The later profile.", valueName: "AFTER"))
    var after: String

    @Option(name: .long, help: ArgumentHelp("text: one block a changed stack; pprof: a gzipped profile whose values are the changes (for go tool pprof -top).", valueName: "text|pprof"))
    var format: Format = .text

    @Option(name: [.customShort("o"), .long], help: ArgumentHelp("Write to FILE instead of standard output.", valueName: "FILE"))
    var output: String?

    func run() throws {
        try OutputTarget.check(output)
        let diff = StackDiff(before: try readProfile(before), after: try readProfile(after))
        let writer = StackDiffWriter()
        try writeOutput(format == .text ? Array(writer.write(diff).utf8) : writer.writePprof(diff), to: output)
        // As diff(1): a script can ask whether anything changed.
        if !diff.entries.isEmpty { throw ExitStatus.partial }
    }
}
