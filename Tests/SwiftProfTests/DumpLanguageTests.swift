// Names from places other than a plain C binary: C++ and Swift symbols, the vDSO.
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
    }

    @Test func swiftNames() throws {
        let fixture = try Fixture.swift()
        defer { fixture.stop() }
        let result = try swiftprof("dump", "\(fixture.pid)")
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
