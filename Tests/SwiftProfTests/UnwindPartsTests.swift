// The parts of the unwinder that need no live process: frame-pointer steps on a
// recorded stack, the maps parser and the ELF reader on a real binary.
import Foundation
@testable import SwiftProf
import Testing

struct FramePointerWalkTests {
    /// A stack copied from 0x1000, one word each: a frame at fp holds the caller's fp
    /// at [fp] and the return address at [fp + 8].
    static func stack(_ words: [UInt64]) -> StackCopy {
        StackCopy(start: 0x1000, bytes: words.flatMap { word in (0..<8).map { UInt8(truncatingIfNeeded: word >> (8 * UInt64($0))) } })
    }

    static let code: @Sendable (UInt64) -> Bool = { $0 >= 0x40_0000 && $0 < 0x50_0000 }

    @Test func followsAChainToAZeroFramePointer() {
        let copy = Self.stack([0, 0x1018, 0x40_0010, 0x1028, 0x40_0020, 0, 0x40_0030])
        let result = FramePointerWalk(stack: copy, isCode: Self.code).walk(from: 0x1008, above: 0x1000, limit: 10)
        #expect(result.returnAddresses == [0x40_0010, 0x40_0020, 0x40_0030])
        #expect(result.stopReason == nil)
    }

    @Test func rejectsAFramePointerThatGoesDown() {
        let copy = Self.stack([0, 0x1000, 0x40_0010])
        let result = FramePointerWalk(stack: copy, isCode: Self.code).walk(from: 0x1008, above: 0x1000, limit: 10)
        #expect(result.returnAddresses == [0x40_0010])
        #expect(result.stopReason == "frame pointer 0x1000 is not above the stack pointer")
    }

    @Test func rejectsAReturnAddressOutsideCode() {
        let copy = Self.stack([0, 0x1018, 0xdead_beef])
        let result = FramePointerWalk(stack: copy, isCode: Self.code).walk(from: 0x1008, above: 0x1000, limit: 10)
        #expect(result.returnAddresses.isEmpty)
        #expect(result.stopReason == "return address 0xdeadbeef is not in executable memory")
    }

    @Test func stopsAtTheCopyEndAndTheDepthLimit() {
        let copy = Self.stack([0, 0x1018, 0x40_0010, 0x9999_0000, 0x40_0020])
        let outside = FramePointerWalk(stack: copy, isCode: Self.code).walk(from: 0x1008, above: 0x1000, limit: 10)
        #expect(outside.returnAddresses == [0x40_0010, 0x40_0020])
        #expect(outside.stopReason == "frame pointer 0x99990000 is outside the copied stack")
        let limited = FramePointerWalk(stack: copy, isCode: Self.code).walk(from: 0x1008, above: 0x1000, limit: 1)
        #expect(limited.returnAddresses.count == 1)
        #expect(limited.stopReason == "depth limit reached")
    }
}

struct MemoryMapTests {
    @Test func parsesPathsWithSpacesAndSpecialRegions() {
        let map = MemoryMap(parsing: """
            7f0000000000-7f0000001000 r-xp 00002000 fe:00 42                         /opt/my app/lib.so (deleted)
            7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
            55d000000000-55d000001000 rw-p 00000000 00:00 0
            """)
        #expect(map.regions.count == 3)
        #expect(map.regions[0].path == "")
        let library = try! #require(map.region(containing: 0x7f00_0000_0fff))
        #expect(library.path == "/opt/my app/lib.so (deleted)")
        #expect(library.isDeleted && library.isExecutable && library.isFileBacked)
        #expect(library.offset == 0x2000)
        #expect(map.region(containing: 0x7f00_0000_1000) == nil)
        #expect(map.region(containing: 0x7ffd_0000_0010)?.path == "[stack]")
    }
}

struct ElfImageTests {
    /// Our own test binary: a PIE with .eh_frame_hdr in datarel|sdata4, like every
    /// binary the system linker makes.
    @Test func readsTheUnwindTableOfARealBinary() throws {
        let file = try #require(MappedFile(path: CommandLine.arguments[0]))
        let image = try #require(ElfImage(source: file))
        #expect(image.segments.contains { $0.type == ElfSegment.load })
        let table = try image.ehFrameTable().get()
        #expect(table.entryCount > 100)
        #expect(image.fileOffset(ofVaddr: table.tableVaddr) != nil)
        #expect(image.bias(mappedAt: 0x5555_0000_0000, fileOffset: 0) == 0x5555_0000_0000)
    }

    @Test func rejectsWhatIsNotElf() {
        #expect(ElfImage(source: CopiedBytes(storage: Array("#!/bin/sh\n".utf8))) == nil)
        #expect(ElfImage(source: CopiedBytes(storage: [])) == nil)
    }
}

@Suite struct ShortNameTests {
    @Test(arguments: [
        ("fixture::Parker<int>::park(int)", "fixture::Parker::park"),
        ("void fixture::run<std::vector<int, std::allocator<int> > >(int) const", "fixture::run"),
        ("std::map<int, int>::operator[](int const&)", "std::map::operator[]"),
        ("bool operator< <int>(A<int> const&, A<int> const&)", "operator<"),
        ("(anonymous namespace)::worker(void*)", "(anonymous namespace)::worker"),
        ("foo(int)::{lambda(int)#1}::operator()(int) const", "foo::{lambda(int)#1}::operator()"),
        ("operator new(unsigned long)", "operator new"),
        ("<parked::Store>::park::<&str>", "parked::Store::park"),
        ("<std::io::stdio::Stdin as std::io::Read>::read", "std::io::stdio::Stdin::read"),
        ("std::rt::lang_start::<()>::{closure#0}", "std::rt::lang_start::{closure#0}"),
        ("plain_c_function", "plain_c_function"),
    ])
    func trims(name: String, short: String) {
        #expect(ShortNames.trim(name) == short)
    }
}
