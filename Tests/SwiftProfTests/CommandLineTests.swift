// The man page and README keep up with the command line.
import Foundation
import Testing

struct CommandLineTests {
    static func longOptions(_ help: String) -> Set<String> {
        let pattern = try! NSRegularExpression(pattern: "--([a-z][a-z-]+)")
        let range = NSRange(help.startIndex..., in: help)
        return Set(pattern.matches(in: help, range: range).compactMap { Range($0.range(at: 1), in: help).map { String(help[$0]) } })
    }

    @Test(arguments: ["dump", "attach", "run", "top", "diff", "serve", "exit-status"])
    func manPageAndReadmeListEveryOption(_ command: String) throws {
        let help = try swiftprof(command, "--help")
        #expect(help.status == 0)
        let options = Self.longOptions(help.stdout)
        let expected: [String: Set<String>] = [
            "dump": ["format", "output", "no-inline", "addresses", "memory-map", "input", "consistent"],
            "attach": ["duration", "rate", "progress", "format", "output", "kernel", "push", "push-interval", "push-name"],
            "run": ["duration", "rate", "format", "output"],
            "top": ["rate", "idle"],
            "diff": ["format", "output"],
            "serve": ["listen", "token-file", "rate"],
            "exit-status": ["mdoc"],
        ]
        #expect(options.isSuperset(of: expected[command]!))
        let man = try String(contentsOf: Paths.packageRoot.appendingPathComponent("man/swiftprof.1"), encoding: .utf8)
        let readme = try String(contentsOf: Paths.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        #expect(man.contains("Em \(command)"), "man/swiftprof.1 lacks the \(command) command: run make man")
        for option in options.subtracting(["help", "version"]) {
            #expect(man.contains("Fl -\(option)") || man.contains(", -\(option)"), "man/swiftprof.1 lacks --\(option): run make man")
            #expect(readme.contains("--\(option)"), "README.md lacks --\(option)")
        }
    }

    /// An option that would be silently ignored is refused (status 64) with one line saying why.
    @Test func optionsThatCannotApplyAreRefused() throws {
        let saved = FileManager.default.temporaryDirectory.appendingPathComponent("swiftprof-saved-\(UUID().uuidString).txt").path
        defer { try? FileManager.default.removeItem(atPath: saved) }
        try "thread profile: total 1\n1 @ 0x2\n#\t0x1\tf+0x0\tf.c:1\n\n".write(toFile: saved, atomically: true, encoding: .utf8)
        #expect(try swiftprof("dump", "--input", saved).status == 0)
        for option in ["--no-kernel", "--kernel", "--no-inline", "--consistent", "--stats", "--short-names"] {
            let refused = try swiftprof("dump", "--input", saved, option)
            #expect(refused.status == 64, "\(option): \(refused.stderr)")
            #expect(refused.stderr.contains("\(option) changes how a process is captured: not with --input"), "\(refused.stderr)")
            #expect(refused.stdout.isEmpty)
        }
        let folded = try swiftprof("dump", "1", "--blocked-time", "--format", "folded")
        #expect(folded.status == 64)
        #expect(folded.stderr.contains("--blocked-time goes with --format pprof-text or json"), "\(folded.stderr)")
        #expect(try swiftprof("dump", "--input", saved, "--blocked-time", "--format", "json").status == 0)
        let top = try swiftprof("top", "1", "--kernel")
        #expect(top.status == 64)
        #expect(top.stderr.contains("--kernel does not apply to top"), "\(top.stderr)")
    }

    /// The man page's EXIT STATUS and the README's table say what `exit-status` says.
    @Test func theExitStatusTableIsTheSameEverywhere() throws {
        let table = try swiftprof("exit-status")
        #expect(table.status == 0)
        let rows = table.stdout.split(separator: "\n").map { $0.split(separator: "\t", maxSplits: 1) }
        #expect(rows.count == 11, "\(table.stdout)")
        let man = try String(contentsOf: Paths.packageRoot.appendingPathComponent("man/swiftprof.1"), encoding: .utf8)
        let readme = try String(contentsOf: Paths.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let section = try #require(man.split(separator: ".Sh \"EXIT STATUS\"\n").last)
        for row in rows {
            #expect(section.contains(".It \(row[0])\n\(row[1])\n"), "man/swiftprof.1 lacks exit status \(row[0]): run make man")
            #expect(readme.contains("| \(row[0]) | "), "README.md's table lacks exit status \(row[0])")
        }
    }

    /// Each mistake is named as what it is (#17 item 10).
    @Test func theWordsSayWhatIsWrong() throws {
        for command in [["dump", "-1"], ["attach", "-1"], ["top", "--idle", "-1"]] {
            let result = try swiftprof(command)
            #expect(result.status == 64)
            #expect(result.stderr == "swiftprof: PID must be a positive process id, not -1\n", "\(command): \(result.stderr)")
        }
        let rate = try swiftprof("attach", "1", "--rate", "-5")
        #expect(rate.status == 64 && rate.stderr == "swiftprof: --rate takes a value more than 0, not -5\n", "\(rate.stderr)")
        let duration = try swiftprof("attach", "1", "--duration", "-1s")
        #expect(duration.status == 64)
        #expect(duration.stderr.contains("a time more than 0 is needed"), "\(duration.stderr)")
        let zero = try swiftprof("top", "1", "--rate", "0")
        #expect(zero.stderr.contains("--rate must be more than 0 and at most 10000"), "\(zero.stderr)")
    }

    /// Help says each thing once and in its place; the man page gives --no-kernel its own text.
    @Test func helpAndManPageSayEachThingOnce() throws {
        let help = try swiftprof("dump", "--help").stdout
        #expect(help.components(separatedBy: "flamegraph").count == 2, "the format values are listed once:\n\(help)")
        let symbols = try #require(help.range(of: "SYMBOLS:"), "\(help)")
        #expect(help[symbols.upperBound...].contains("--no-inline") && help.range(of: "--no-inline")!.lowerBound > symbols.lowerBound)
        #expect(help.contains("innermost first, before"), "--kernel says where its frames go")
        let man = try String(contentsOf: Paths.packageRoot.appendingPathComponent("man/swiftprof.1"), encoding: .utf8)
        let lines = man.split(separator: "\n", omittingEmptySubsequences: false)
        let kernel = try #require(lines.firstIndex(of: ".It Fl -kernel"))
        let noKernel = try #require(lines.firstIndex(of: ".It Fl -no-kernel"))
        #expect(lines[kernel + 1] != lines[noKernel + 1], "--no-kernel has --kernel's text: run make man")
        #expect(!man.contains(".Ex -std"), "EXIT STATUS is the generator's: run make man")
        #expect(!man.contains("\n\n"), "a blank line is an mdoc warning: run make man")
        // Values and defaults, which --help shows, the generator leaves out: added by make man.
        #expect(man.contains("\nSamples a second. Default: 100.\n"), "man/swiftprof.1 lacks --rate's default: run make man")
        #expect(man.contains("One of: pprof-text, pprof, folded, speedscope, flamegraph, traceback, json, layers, mermaid, trace. Default: pprof-text."))
    }
}
