// Thousands of mutated inputs into every reader: each must come back as a
// profile or as a FormatError, never as a crash; and whatever a reader accepts,
// every writer must write.
import Foundation
@testable import SwiftProf
import Testing

struct ReaderFuzzTests {
    /// SplitMix64: a fixed seed gives the same mutations on every run.
    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9e37_79b9_7f4a_7c15
            var z = state
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            return z ^ (z >> 31)
        }
        mutating func below(_ bound: Int) -> Int { bound <= 0 ? 0 : Int(next() % UInt64(bound)) }
    }

    static let interesting: [UInt8] = Array("\n\t#@ 0x{}\":,[]-+().".utf8) + [0x00, 0xff, 0x80, 0x1f, 0x8b, 0x0a, 0x08, 0x12]

    static func mutate(_ input: [UInt8], _ random: inout Random) -> [UInt8] {
        var bytes = input
        for _ in 0...random.below(4) {
            guard !bytes.isEmpty else { bytes = [Self.interesting[random.below(Self.interesting.count)]]; continue }
            let at = random.below(bytes.count)
            switch random.below(7) {
            case 0: bytes[at] ^= UInt8(1 << random.below(8))
            case 1: bytes[at] = Self.interesting[random.below(Self.interesting.count)]
            case 2: bytes.remove(at: at)
            case 3: bytes.insert(Self.interesting[random.below(Self.interesting.count)], at: at)
            case 4: bytes.removeSubrange(at..<min(bytes.count, at + random.below(64)))
            case 5:
                let end = min(bytes.count, at + random.below(64))
                bytes.insert(contentsOf: bytes[at..<end], at: random.below(bytes.count))
            default: bytes = Array(bytes.prefix(at))
            }
        }
        return bytes
    }

    /// A profile that uses every feature the formats carry.
    static let document: ProfileDocument = {
        let libc = "/usr/lib/x86_64-linux-gnu/libc.so.6"
        let records = [
            Record(count: 3, locations: [
                Location(address: 0xffff_ffff_8144_1415, module: Location.kernelModule, lines: [FrameLine(function: "futex_do_wait", offset: 0x45, file: "", line: 0)]),
                Location(address: 0x7f00_0000_1000, moduleBias: 0x7f00_0000_0000, module: libc, lines: [
                    FrameLine(function: "__futex_abstimed_wait_common64", offset: 0xc6, file: "./nptl/futex-internal.c", line: 57),
                    FrameLine(function: "__futex_abstimed_wait_common", offset: 0xc6, file: "./nptl/futex-internal.c", line: 87)]),
                Location(address: 0x5500_0000_2000, module: "/srv/app", lines: [FrameLine(function: "worker_wait", offset: 0x2a, file: "/src/a.c", line: 51)]),
                Location(address: 0x5500_0000_3000, module: "/srv/app", lines: [FrameLine(function: "", offset: 0, file: "", line: 0)]),
            ], truncation: "depth limit of 4 frames reached", threadIDs: [10, 11, 12],
                   state: ThreadState(code: "S", systemCall: SystemCall(name: "futex", arguments: ["…", "393", "-1"]), wchan: "futex_do_wait"),
                   threadNames: ["worker"]),
            Record(count: 1, locations: [Location(address: 0x5500_0000_4000, module: "/srv/app", lines: [FrameLine(function: "spin", offset: 7, file: "/src/a.c", line: 9)])],
                   truncation: nil, threadIDs: [13], state: ThreadState(code: "R"), threadNames: ["spinner"]),
        ]
        return ProfileDocument(pid: 42, records: records, memoryMapLines: ["5500000000000-5500000005000 r-xp 00001000 fe:00 7 /srv/app"])
    }()

    static var seeds: [(String, [UInt8])] {
        let text = PprofTextWriter(memoryMapLines: document.memoryMapLines).write(document.records)
        let golden = (try? Data(contentsOf: PprofTextTests.goGolden)).map { Array($0) } ?? []
        return [
            ("pprof-text", Array(text.utf8)),
            ("go text", golden),
            ("json", Array(JSONFormat.write(document).utf8)),
            ("pprof raw", PprofProto.encode(document, sampleType: "thread")),
            ("pprof gzip", PprofProto.write(document)),
        ]
    }

    @Test func seedsAreReadable() throws {
        for (name, bytes) in Self.seeds {
            let read = try ProfileReader.read(bytes)
            #expect(read.total > 0, "\(name)")
        }
        #expect(try ProfileReader.read(Array(JSONFormat.write(Self.document).utf8)) == Self.document)
    }

    @Test func mutatedInputsNeverCrashAReaderOrAWriter() {
        var random = Random(state: 0x5eed_5eed)
        var accepted = 0, rejected = 0
        for (_, seed) in Self.seeds {
            for _ in 0..<2500 {
                let input = Self.mutate(seed, &random)
                do {
                    let document = try ProfileReader.read(input)
                    accepted += 1
                    writeEverything(document)
                } catch {
                    rejected += 1
                    #expect(!error.reason.isEmpty)
                }
                if let text = String(validating: input, as: UTF8.self) {
                    _ = try? PprofTextReader.read(text)
                    _ = try? JSONFormat.read(text)
                }
                _ = try? PprofProto.read(input)
            }
        }
        // Both outcomes must occur, or the mutations test nothing.
        #expect(accepted > 100)
        #expect(rejected > 1000)
    }

    func writeEverything(_ document: ProfileDocument) {
        _ = PprofTextWriter(memoryMapLines: document.memoryMapLines).write(document.records)
        _ = PprofTextWriter(addresses: .relative).write(Grouper.sorted(document.records, addresses: .relative))
        _ = JSONFormat.write(document)
        _ = PprofProto.write(document)
        _ = FoldedWriter(threadNames: true).write(document)
        _ = SpeedscopeWriter().write(document)
        _ = FlameGraphWriter().write(document)
        _ = TracebackWriter().write(document)
        let rows = InteractionMatrix.rows(document.records, classifier: Classifier())
        _ = LayersTableWriter(markdown: true).write(rows)
        _ = MermaidChartWriter().write(rows)
        _ = StackDiffWriter().write(StackDiff(before: document, after: Self.document))
    }
}
