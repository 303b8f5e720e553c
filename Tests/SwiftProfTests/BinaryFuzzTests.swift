// Corrupted copies of real binaries into every parser of a target's files: the ELF
// headers and unwind table index (ElfImage, ElfSections), Go's function table
// (GoPclntab) and Go's runtime layout from the DWARF (GoRuntimeLayout, through the
// C side that hides the debug sections it does not read). A target chooses its binaries, so each mutation must come back as
// "not an ELF file", an empty table or a missing function, never as a crash (a
// trap ends the whole test run, which is how this test fails).
// Seeded: every run tries the same inputs. SWIFTPROF_STRESS_TRIALS raises the
// count and SWIFTPROF_FUZZ_SEED changes the inputs (make stress).
import CSwiftProf
import Foundation
@testable import SwiftProf
import Testing

struct BinaryFuzzTests {
    typealias Random = ReaderFuzzTests.Random

    static var trials: Int { ProcessInfo.processInfo.environment["SWIFTPROF_STRESS_TRIALS"].flatMap(Int.init).map { $0 * 20 } ?? 400 }

    /// The byte ranges a parser reads first (headers and tables), where a mutation
    /// matters; elsewhere it mostly lands in code nobody parses.
    static func structuralRanges(_ bytes: [UInt8]) -> [Range<Int>] {
        var ranges = [0..<min(64, bytes.count)]
        let source = CopiedBytes(storage: bytes)
        if let phoff = source.load(UInt64.self, at: 32), let phnum = source.load(UInt16.self, at: 56), phoff < UInt64(bytes.count) {
            ranges.append(Int(phoff)..<min(bytes.count, Int(phoff) + Int(phnum) * 56))
        }
        if let shoff = source.load(UInt64.self, at: 40), let shnum = source.load(UInt16.self, at: 60), shoff < UInt64(bytes.count) {
            ranges.append(Int(shoff)..<min(bytes.count, Int(shoff) + Int(shnum) * 64))
        }
        if let image = ElfImage(source: source) {
            for section in image.sections() where [".eh_frame_hdr", ".gopclntab", ".go.buildinfo", ".noptrdata", ".shstrtab",
                                                   ".debug_abbrev", ".debug_info"].contains(section.name) {
                guard section.offset >= 0, section.offset < bytes.count else { continue }
                ranges.append(section.offset..<min(bytes.count, section.offset + min(max(section.size, 0), 4096)))
            }
        }
        return ranges.filter { !$0.isEmpty }
    }

    static func mutate(_ input: [UInt8], ranges: [Range<Int>], _ random: inout Random) -> [UInt8] {
        var bytes = input
        if random.below(10) == 0 { bytes.removeLast(random.below(bytes.count)) }  // truncated
        for _ in 0...random.below(8) where !bytes.isEmpty {
            let range = ranges[random.below(ranges.count)]
            let at = random.below(8) == 0 ? random.below(bytes.count) : range.lowerBound + random.below(range.count)
            guard at < bytes.count else { continue }
            switch random.below(4) {
            case 0: bytes[at] ^= UInt8(1 << random.below(8))
            case 1: bytes[at] = [0x00, 0xff, 0x7f, 0x80, 0x01][random.below(5)]
            case 2:
                // A whole word set to an extreme: offsets, sizes and counts.
                let value: UInt64 = [0, .max, UInt64(Int.max), 0x8000_0000_0000_0000, UInt64(bytes.count), 0xffff_ffff][random.below(6)]
                for index in 0..<8 where at + index < bytes.count { bytes[at + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
            default: bytes[at] = UInt8(truncatingIfNeeded: random.next())
            }
        }
        return bytes
    }

    /// Everything the profiler asks of a binary, over a mutated copy.
    static func exercise(_ bytes: [UInt8], pcs: [UInt64]) {
        guard let image = ElfImage(source: CopiedBytes(storage: bytes)) else { return }
        _ = image.ehFrameTable()
        for section in image.sections() { _ = section.contains(section.address) }
        for pc in pcs {
            _ = image.fileOffset(ofVaddr: pc)
            _ = image.load(UInt64.self, atVaddr: pc)
            _ = image.bias(mappedAt: 0x5555_5555_4000, fileOffset: 0)
        }
        guard let table = GoPclntab(image: image) else { return }
        for pc in pcs {
            guard let function = table.function(at: pc) else { continue }
            _ = table.name(of: function)
            _ = table.fileLine(function, at: pc)
            _ = table.spDelta(function, at: pc)
            _ = table.inlinedCall(function, at: pc)
            _ = table.functionID(of: function)
        }
    }

    /// Go's runtime layout read from `bytes` as from a file.
    static func layout(_ bytes: [UInt8]) throws -> Result<GoRuntimeLayout, GoRuntimeLayout.Problem> {
        let descriptor = bytes.withUnsafeBytes { sp_memory_file($0.baseAddress, $0.count) }
        try #require(descriptor >= 0)
        defer { close(descriptor) }
        return GoRuntimeLayout.read(descriptor: descriptor)
    }

    /// Addresses of code in the unmutated binary: what the parsers are asked about.
    static func codeAddresses(_ bytes: [UInt8]) -> [UInt64] {
        guard let image = ElfImage(source: CopiedBytes(storage: bytes)),
              let text = image.sections().first(where: { $0.name == ".text" }) else { return [] }
        return (0..<64).map { text.address + UInt64(text.size) / 64 * UInt64($0) + 1 }
    }

    @Test func corruptedBinariesNeverCrashTheParsers() throws {
        let seeds = [try FixtureBuild.executable("parked"), try FixtureBuild.go("kvserver")]
        // SWIFTPROF_FUZZ_SEED tries other inputs (make stress); the default is fixed.
        let seed = ProcessInfo.processInfo.environment["SWIFTPROF_FUZZ_SEED"].flatMap { UInt64($0) } ?? 0x5eed_b1a5
        var random = Random(state: seed)
        for path in seeds {
            let original = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            let pcs = Self.codeAddresses(original)
            #expect(!pcs.isEmpty, "\(path) has a .text section")
            // The unmutated seed parses, and Go's table names its functions.
            Self.exercise(original, pcs: pcs)
            if path.hasSuffix("kvserver") {
                let image = try #require(ElfImage(source: CopiedBytes(storage: original)))
                let table = try #require(GoPclntab(image: image))
                #expect(pcs.contains { table.function(at: $0) != nil })
            }
            let ranges = Self.structuralRanges(original)
            for trial in 0..<Self.trials {
                let mutated = Self.mutate(original, ranges: ranges, &random)
                Self.exercise(mutated, pcs: pcs)
                // A layout read inflates .debug_info (10 ms): one mutation in 8.
                if path.hasSuffix("kvserver"), trial % 8 == 0 { _ = try Self.layout(mutated) }
            }
            if path.hasSuffix("kvserver") {
                let layout = try Self.layout(original).get()
                #expect(layout.gSize > 0 && layout.allgs != 0 && layout.goid > 0)
            }
        }
    }
}
