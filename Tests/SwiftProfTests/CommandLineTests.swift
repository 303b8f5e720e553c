// The man page and README keep up with the command line.
import Foundation
import Testing

struct CommandLineTests {
    static func longOptions(_ help: String) -> Set<String> {
        let pattern = try! NSRegularExpression(pattern: "--([a-z][a-z-]+)")
        let range = NSRange(help.startIndex..., in: help)
        return Set(pattern.matches(in: help, range: range).compactMap { Range($0.range(at: 1), in: help).map { String(help[$0]) } })
    }

    @Test(arguments: ["dump", "attach", "run", "top", "diff"])
    func manPageAndReadmeListEveryOption(_ command: String) throws {
        let help = try swiftprof(command, "--help")
        #expect(help.status == 0)
        let options = Self.longOptions(help.stdout)
        let expected: [String: Set<String>] = [
            "dump": ["format", "output", "no-inline", "addresses", "memory-map", "input", "consistent"],
            "attach": ["duration", "rate", "progress", "format", "output", "kernel"],
            "run": ["duration", "rate", "format", "output"],
            "top": ["rate", "idle"],
            "diff": ["format", "output"],
        ]
        #expect(options.isSuperset(of: expected[command]!))
        let man = try String(contentsOf: Paths.packageRoot.appendingPathComponent("man/swiftprof.1"), encoding: .utf8)
        let readme = try String(contentsOf: Paths.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        for option in options.subtracting(["help", "version"]) {
            #expect(man.contains("Fl -\(option)") || man.contains(", -\(option)"), "man/swiftprof.1 lacks --\(option): run make man")
            #expect(readme.contains("--\(option)"), "README.md lacks --\(option)")
        }
    }
}
