// Names from places other than a plain C binary: C++ and Swift symbols, the vDSO.
import Foundation
import Testing

@Suite(.serialized)
struct DumpLanguageTests {
    @Test func cppMethodInANamespace() throws {
        let fixture = try Fixture(try FixtureBuild.executable("parked_cpp", flags: ["-O1", "-g"]))
        defer { fixture.stop() }
        let result = try swiftprof("dump", "\(fixture.pid)")
        #expect(result.status == 0, "\(result.stderr)")
        let profile = try parseProfile(result.stdout)
        let parker = try #require(profile.record(containing: "fixture::Parker<int>::park(int)"))
        #expect(parker.frame("fixture::Parker<int>::park(int)")?.line
                == sourceLine("Fixtures/c/parked_cpp.cpp", containing: "for (;;) nanosleep(&time"))
        #expect(parker.truncation == nil)
        let mangled = try parseProfile(try swiftprof("dump", "--no-demangle", "\(fixture.pid)").stdout)
        #expect(mangled.record(containing: "_ZN7fixture6ParkerIiE4parkEi") != nil)
        let short = try parseProfile(try swiftprof("dump", "--short-names", "\(fixture.pid)").stdout)
        #expect(short.record(containing: "fixture::Parker::park") != nil, "\(short.records.map(\.functions))")
        #expect(short.record(containing: "fixture::Parker<int>::park(int)") == nil)
    }

    /// A C++ name of hundreds of characters (long_name.cpp's template method) is printed
    /// whole, but does not pad the other frame lines of its record (#31): their file
    /// column starts where names of up to 80 characters put it; the record reads back.
    @Test func aLongCppNameDoesNotPadItsRecord() throws {
        let fixture = try Fixture(try FixtureBuild.executable("long_name", flags: ["-O1", "-g"]))
        defer { fixture.stop() }
        let result = try swiftprof("dump", "--no-kernel", "\(fixture.pid)")
        #expect(result.status == 0, "\(result.stderr)")
        let profile = try parseProfile(result.stdout)
        let record = try #require(profile.record(containing: "watch"), "\(result.stdout)")
        let long = try #require(record.functions.first { $0.hasPrefix("void fixture::Registry<std::map<") }, "\(record.functions)")
        #expect(long.count > 200 && long.hasSuffix("::wait_for_changes<long>(std::map<std::__cxx11::basic_string<char, std::char_traits<char>, "
                + "std::allocator<char> >, std::vector<std::pair<long, double>, std::allocator<std::pair<long, double> > >, "
                + "std::less<std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > >, "
                + "std::allocator<std::pair<std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > const, "
                + "std::vector<std::pair<long, double>, std::allocator<std::pair<long, double> > > > > > const&, long)"), "\(long)")
        /// Where a line's last cell (the file) starts, tabs expanded to 8 columns.
        func fileColumn(_ line: Substring) -> Int {
            var column = 0
            for character in line.dropLast(line.split(separator: "\t").last?.count ?? 0) {
                column = character == "\t" ? (column / 8 + 1) * 8 : column + 1
            }
            return column
        }
        let frames = result.stdout.split(separator: "\n").filter { $0.hasPrefix("#\t0x") && !$0.contains("wait_for_changes") }
        let watch = try #require(frames.first { $0.contains("\twatch+0x") }, "\(result.stdout)")
        #expect(fileColumn(watch) <= 8 + 16 + 88, "\(watch)")
        #expect(frames.allSatisfy { fileColumn($0) <= 8 + 16 + 88 }, "\(result.stdout)")
        let directory = try FormatsTests.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("long.txt").path
        try result.stdout.write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try swiftprof("dump", "--input", file).stdout == result.stdout)
    }

    @Test func swiftNames() throws {
        let fixture = try Fixture.swift()
        defer { fixture.stop() }
        let result = try swiftprof("dump", "--swift-names", "full", "\(fixture.pid)")
        #expect(result.status == 0, "\(result.stderr)")
        let profile = try parseProfile(result.stdout)
        let functions = profile.records.flatMap(\.functions)
        #expect(functions.contains("SwiftParked.Store.ttlLoop() -> Swift.Never"))
        #expect(functions.contains("SwiftParked.Store.park<A where A: Swift.Hashable>(key: A) -> Swift.Never"))
        #expect(functions.contains("Swift.readLine(strippingNewline: Swift.Bool) -> Swift.Optional<Swift.String>"))
        #expect(profile.records.allSatisfy { $0.truncation == nil })
        let mangled = try swiftprof("dump", "--no-demangle", "\(fixture.pid)").stdout
        #expect(mangled.contains("$s11SwiftParked5StoreC7ttlLoops5NeverOyF+0x"))
        fixture.expectRunning()
    }

    /// Swift's runtime, Foundation and Dispatch keep frame pointers, so a walk from
    /// the sp and pc /proc gives needs rbp: recovered from the copied stack, the
    /// blocked threads are captured without a stop, with the same stack a stop gives.
    /// The task's thread too: its async function, entered through an indirect call,
    /// has Swift's extended frame prologue, which says where its rbp is.
    @Test func swiftThreadsNeedNoStop() throws {
        let fixture = try Fixture.swift()
        defer { fixture.stop() }
        let plain = try swiftprof("dump", "--no-kernel", "\(fixture.pid)").stdout
        let stopped = try swiftprof("dump", "--no-kernel", "--consistent", "\(fixture.pid)").stdout
        let threads = try parseProfile(plain).records.reduce(0) { $0 + $1.count }
        #expect(plain.contains("# capture: \(threads) without stop\n"), "\(plain)")
        func stacks(_ text: String) -> String {
            text.split(separator: "\n").filter { !$0.hasPrefix("# capture") && !$0.hasPrefix("# state") }.joined(separator: "\n")
        }
        #expect(stacks(plain) == stacks(stopped))
        #expect(plain.contains("Swift.readLine(strippingNewline:)"))
        // Sampling: each thread is stopped once at most (its rbp is then known while it waits), then reused.
        let attach = try swiftprof("attach", "--duration", "0.5s", "--stats", "\(fixture.pid)")
        let stats = try #require(attach.stderr.split(separator: "\n").last { $0.contains(" samples, ") })
        let stops = stats.contains(" stopped") ? Int(stats.split(separator: " ").dropLast().last!) ?? 0 : 0
        #expect(stops <= threads, "\(stats)")
        #expect(stats.contains(" reused"), "\(stats)")
        fixture.expectRunning()
    }

    /// By default, the forms Swift's own backtracer prints, with the module in front,
    /// async functions marked and thunks (here the @convention(c) entry of a pthread)
    /// left out; --swift-names full: the whole demangling, thunks shown unless hidden.
    @Test func swiftSimplifiedNamesAndThunks() throws {
        let fixture = try Fixture.swift()
        defer { fixture.stop() }
        let simplified = try parseProfile(try swiftprof("dump", "\(fixture.pid)").stdout)
        let functions = simplified.records.flatMap(\.functions)
        #expect(functions.contains("SwiftParked.Store.park<A>(key:)"), "\(functions)")
        #expect(functions.contains("SwiftParked.Store.ttlLoop()"))
        #expect(functions.contains("Swift.readLine(strippingNewline:)"))
        #expect(functions.contains("SwiftParked.blockInTask(period:) async"), "\(functions)")
        #expect(functions.contains("SwiftParked.threadEntry(_:)"))
        #expect(!functions.contains { $0.hasPrefix("@objc ") }, "\(functions)")
        let explicit = try parseProfile(try swiftprof("dump", "--swift-names", "simplified", "\(fixture.pid)").stdout)
            .records.flatMap(\.functions)
        #expect(explicit.contains("SwiftParked.threadEntry(_:)") && !explicit.contains { $0.hasPrefix("@objc ") }, "\(explicit)")

        let full = try parseProfile(try swiftprof("dump", "--swift-names", "full", "\(fixture.pid)").stdout)
        #expect(full.records.flatMap(\.functions).contains { $0.contains("SwiftParked.blockInTask(period: Swift.Int) async -> Swift.Never") },
                "\(full.records.flatMap(\.functions))")
        let shown = try #require(full.records.first { $0.functions.contains { $0.contains("SwiftParked.Store.ttlLoop()") } })
        #expect(shown.functions.contains { $0.hasPrefix("@objc ") }, "\(shown.functions)")
        let hidden = try parseProfile(try swiftprof("dump", "--swift-names", "full", "--hide-thunks", "\(fixture.pid)").stdout)
        let parked = try #require(hidden.records.first { $0.functions.contains { $0.contains("SwiftParked.Store.ttlLoop()") } })
        #expect(!parked.functions.contains { $0.hasPrefix("@objc ") }, "\(parked.functions)")
        #expect(parked.userFunctions.count == shown.userFunctions.count - 1, "\(parked.userFunctions) \(shown.userFunctions)")
        fixture.expectRunning()
    }

    @Test(.enabled(if: FixtureBuild.rustc != nil, "rustc is not installed: Rust names are not tested"),
          arguments: ["legacy", "v0"])
    func rustNames(mangling: String) throws {
        let fixture = try Fixture(try FixtureBuild.rust("parked", mangling: mangling))
        defer { fixture.stop() }
        let result = try swiftprof("dump", "\(fixture.pid)")
        #expect(result.status == 0, "\(result.stderr)")
        let profile = try parseProfile(result.stdout)
        let expected = mangling == "v0" ? ["<parked::Store>::ttl_loop", "<parked::Store>::park::<&str>"]
            : ["parked::Store::ttl_loop", "parked::Store::park"]
        let parked = try #require(profile.record(containing: expected[0]), "\(profile.records.map(\.functions))")
        #expect(parked.functions.contains(expected[1]))
        #expect(parked.functions.contains("std::thread::functions::sleep"))
        #expect(parked.frame(expected[0])?.line == sourceLine("Fixtures/rust/parked.rs", containing: "std::thread::sleep(self.period)"))
        #expect(!result.stdout.contains("17h"), "no legacy hash is left")

        let short = try parseProfile(try swiftprof("dump", "--short-names", "\(fixture.pid)").stdout)
        let shortParked = try #require(short.record(containing: "parked::Store::ttl_loop"))
        #expect(shortParked.functions.contains("parked::Store::park"))

        // std is the runtime, the fixture's own code the application.
        let layers = try swiftprof("dump", "--format", "layers", "\(fixture.pid)").stdout
        let row = try #require(layers.split(separator: "\n").first { $0.contains("ttl_loop") }, "\(layers)")
        #expect(row.contains("\(expected[0])  ") && row.contains("std::thread::functions::sleep"), "\(row)")
        fixture.expectRunning()
    }

    /// The vDSO is an ELF image in memory only: unwound from a copy of its
    /// .eh_frame, named from its symbol table.
    @Test func framesInTheVdso() throws {
        let fixture = try Fixture.c("clock_spin")
        defer { fixture.stop() }
        // The thread spends most of its time inside the vDSO; a few snapshots catch it there.
        for _ in 0..<100 {
            let profile = try parseProfile(try swiftprof("dump", "\(fixture.pid)").stdout)
            guard let clock = profile.record(containing: "__vdso_clock_gettime") else { continue }
            #expect(clock.functions.prefix(2) == ["__vdso_clock_gettime", "__GI___clock_gettime"])
            #expect(clock.functions.contains("read_clock_forever"))
            #expect(clock.truncation == nil)
            return
        }
        Issue.record("100 snapshots never caught the thread inside the vDSO")
    }
}
