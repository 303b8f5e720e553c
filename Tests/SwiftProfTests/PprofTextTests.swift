// The pprof-text writer and reader, against Go's own output and both ways.
import Foundation
@testable import SwiftProf
import Testing

struct PprofTextTests {
    static let goGolden = Paths.packageRoot.appendingPathComponent("Fixtures/golden/go-goroutine-debug1.txt")

    /// Real output of Go's runtime/pprof (the reference document's goroutine
    /// profile): reading it and writing it again must give the same bytes, which
    /// checks the record layout and the tabwriter alignment against Go itself.
    @Test func goOutputRoundTripsByteForByte() throws {
        let text = try String(contentsOf: Self.goGolden, encoding: .utf8)
        let profile = try PprofTextReader.read(text)
        #expect(profile.profileName == "goroutine")
        #expect(profile.records.count == 5)
        #expect(profile.records[2].locations.count == 15)
        #expect(profile.records[2].locations[0].lines.isEmpty)  // Go hides leading runtime frames
        let written = PprofTextWriter(profileName: profile.profileName).write(profile.records)
        #expect(written == text)
    }

    static let sample: [Record] = [
        Record(count: 8, locations: [
            Location(address: 0x7f00_0000_1000, lines: [
                FrameLine(function: "inner_inlined", offset: 0x10, file: "/src/a.c", line: 7),
                FrameLine(function: "outer", offset: 0x10, file: "/src/a.c", line: 30),
            ]),
            Location(address: 0x5500_0000_2000, lines: [FrameLine(function: "", offset: 0, file: "", line: 0)]),
            Location(address: 0x5500_0000_3000, lines: [FrameLine(function: "recurse", offset: 0xf, file: "", line: 0)]),
            Location(address: 0x5500_0000_3000, lines: [FrameLine(function: "recurse", offset: 0xf, file: "", line: 0)]),
            Location(address: 0x5500_0000_4000, lines: [FrameLine(function: "a very long function name(int, char const*)", offset: 0x1, file: "/x.cc", line: 1)]),
        ], truncation: "depth limit of 5 frames reached"),
        Record(count: 1, locations: [Location(address: 0x1234, lines: [FrameLine(function: "f", offset: 0, file: "/f.c", line: 2)])], truncation: nil),
    ]

    @Test func writesGoLayout() {
        let text = PprofTextWriter().write(Self.sample)
        #expect(text == """
            thread profile: total 9
            8 @ 0x7f0000001001 0x550000002001 0x550000003001 0x550000003001 0x550000004001
            #\t0x7f0000001000\tinner_inlined+0x10\t/src/a.c:7
            #\t0x7f0000001000\touter+0x10\t\t/src/a.c:30
            #\t0x550000002000
            #\t0x550000003000\trecurse+0xf\t\t\t\t\t??:0
            #\t0x550000003000\trecurse+0xf\t\t\t\t\t??:0
            #\t0x550000004000\ta very long function name(int, char const*)+0x1\t/x.cc:1
            # truncated: depth limit of 5 frames reached

            1 @ 0x1235
            #\t0x1234\tf+0x0\t/f.c:2


            """)
    }

    @Test func readsWhatItWrites() throws {
        let text = PprofTextWriter().write(Self.sample)
        let profile = try PprofTextReader.read(text)
        #expect(profile.records == Self.sample)
        #expect(PprofTextWriter().write(profile.records) == text)
    }

    @Test func memoryMapSectionRoundTrips() throws {
        let maps = ["55d0c1a0b000-55d0c1a0c000 r-xp 00001000 fe:00 42 /usr/bin/x"]
        let text = PprofTextWriter(memoryMapLines: maps).write(Self.sample)
        #expect(text.hasSuffix("\n--- Memory map: ---\n" + maps[0] + "\n"))
        #expect(try PprofTextReader.read(text).memoryMapLines == maps)
    }

    @Test(arguments: [
        ("", 1, "expected \"NAME profile: total N\""),
        ("thread profile: total x\n", 1, "expected \"NAME profile: total N\""),
        ("thread profile: total 1\n#\t0x1\tf+0x0\tf.c:1\n", 2, "frame line outside a record"),
        ("thread profile: total 1\n1 @ 0x2\n#\t0x1\tf\tf.c:1\n", 3, "expected \"func+0xOFFSET\" and \"file:line\""),
        ("thread profile: total 1\n1 @ zz\n", 2, "bad address \"zz\""),
        ("thread profile: total 1\n1 0x2\n", 2, "expected \"N @ 0x...\""),
        ("thread profile: total 1\n1 @ 0x2\n#\t0x9\tf+0x0\tf.c:1\n", 2, "frame line for 0x9 matches no address of the record"),
        ("thread profile: total 3\n1 @ 0x2\n", 1, "header total 3 but the records count 1"),
        ("thread profile: total 1\n# truncated: x\n", 2, "truncation note outside a record"),
    ])
    func malformedInputNamesTheLine(_ input: String, line: Int, reason: String) {
        #expect(throws: FormatError(line: line, reason: reason)) { try PprofTextReader.read(input) }
    }
}

struct TabWriterTests {
    /// Go's tabwriter aligns a column only across consecutive lines that have a
    /// cell in it: a line without one (an unsymbolized frame) splits the block.
    @Test func aLineWithoutTheColumnSplitsTheBlock() {
        let text = TabWriter().format(["#\t0x1\tshort\tf:1", "#\t0x2", "#\t0x3\ta_longer_name\tf:2", "#\t0x4\tx\tf:3"])
        #expect(text == "#\t0x1\tshort\tf:1\n#\t0x2\n#\t0x3\ta_longer_name\tf:2\n#\t0x4\tx\t\tf:3\n")
    }

    @Test func widthsRoundUpToTabStops() {
        // "seven77" is 7 wide + padding 1 = 8: one tab; "eight888" is 9 wide: two tab stops.
        #expect(TabWriter().format(["a\tseven77\tz", "a\tx\tz"]) == "a\tseven77\tz\na\tx\tz\n")
        #expect(TabWriter().format(["a\teight888\tz", "a\tx\tz"]) == "a\teight888\tz\na\tx\t\tz\n")
    }
}

struct GrouperTests {
    static func stack(_ tid: Int32, _ addresses: [UInt64], truncation: String? = nil) -> ThreadStack {
        ThreadStack(tid: tid, name: "t", locations: addresses.map {
            Location(address: $0, moduleBias: 0x1000, lines: [FrameLine(function: "f\($0)", offset: 0, file: "", line: 0)])
        }, truncation: truncation)
    }

    @Test func identicalStacksCollapseAndSortByCountThenKey() {
        let records = Grouper.records([
            Self.stack(5, [0x20, 0x30]), Self.stack(3, [0x10]), Self.stack(4, [0x20, 0x30]),
            Self.stack(9, [0x9]), Self.stack(7, [0x20, 0x30], truncation: "cut"),
        ])
        #expect(records.map(\.count) == [2, 1, 1, 1])
        #expect(records[0].threadIDs == [4, 5])
        // Ties sort by the "@ ..." string, byte-wise: "@ 0x11" < "@ 0x21" < "@ 0xa".
        #expect(records.dropFirst().map { Grouper.atKey($0, addresses: .absolute) } == ["@ 0x11", "@ 0x21 0x31", "@ 0xa"])
        #expect(records[2].truncation == "cut")
    }

    @Test func relativeAddressesSubtractTheBias() {
        let records = Grouper.records([Self.stack(1, [0x1234])], addresses: .relative)
        #expect(Grouper.atKey(records[0], addresses: .relative) == "@ 0x235")
    }
}
