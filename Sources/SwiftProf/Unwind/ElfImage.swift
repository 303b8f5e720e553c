// Just enough of an ELF file to unwind through it: the program headers (to turn
// addresses into file offsets and find the load bias) and .eh_frame_hdr.

struct ElfSegment: Equatable {
    let type: UInt32
    /// PF_X 1, PF_W 2, PF_R 4.
    let flags: UInt32
    let offset: UInt64
    let vaddr: UInt64
    let fileSize: UInt64
    let memorySize: UInt64

    static let load: UInt32 = 1
    static let gnuEhFrame: UInt32 = 0x6474_e550
}

/// The binary-search table of `.eh_frame_hdr`, as libunwind's remote-table lookup wants it.
struct EhFrameTable: Equatable {
    /// Link-time address of .eh_frame_hdr (libunwind's "segbase").
    let headerVaddr: UInt64
    /// Link-time address of the first table entry.
    let tableVaddr: UInt64
    let entryCount: UInt64
}

struct ElfImage {
    let source: any ByteSource
    let segments: [ElfSegment]
    /// Read with the segments (ElfHeaders): what only sections name.
    let sectionTable: [ElfSection]

    init?(source: any ByteSource) {
        guard let headers = ElfHeaders.read(source) else { return nil }
        self.source = source
        segments = headers.segments
        sectionTable = headers.sections
    }

    /// The file offset holding link-time address `vaddr`, if a loaded segment has it in the file.
    func fileOffset(ofVaddr vaddr: UInt64) -> Int? {
        for segment in segments where segment.type == ElfSegment.load
            && vaddr >= segment.vaddr && vaddr - segment.vaddr < segment.fileSize {
            // The file's numbers: a sum past Int is no offset (a fuzzed header trapped here).
            let (offset, overflow) = segment.offset.addingReportingOverflow(vaddr - segment.vaddr)
            return overflow || offset > UInt64(Int.max) ? nil : Int(offset)
        }
        return nil
    }

    func load<T: FixedWidthInteger>(_ type: T.Type, atVaddr vaddr: UInt64) -> T? {
        fileOffset(ofVaddr: vaddr).flatMap { source.load(T.self, at: $0) }
    }

    /// The load bias, given one mapping of the file: where its segment landed minus its link address.
    func bias(mappedAt start: UInt64, fileOffset: UInt64, pageSize: UInt64 = 4096) -> UInt64? {
        let mask = ~(pageSize - 1)
        for segment in segments where segment.type == ElfSegment.load && segment.offset & mask == fileOffset {
            return start &- (segment.vaddr & mask)
        }
        return nil
    }

    /// The .eh_frame_hdr table, or why it cannot be used. libunwind's table search
    /// calls abort() on anything but datarel|sdata4 entries, so that is checked here.
    func ehFrameTable() -> Result<EhFrameTable, UnwindTableProblem> {
        guard let header = segments.first(where: { $0.type == ElfSegment.gnuEhFrame }) else { return .failure(.missing) }
        let at = header.vaddr
        guard let version = load(UInt8.self, atVaddr: at), let framePointerEncoding = load(UInt8.self, atVaddr: at &+ 1),
              let countEncoding = load(UInt8.self, atVaddr: at &+ 2), let tableEncoding = load(UInt8.self, atVaddr: at &+ 3)
        else { return .failure(.unreadable) }
        guard version == 1 else { return .failure(.unsupported("version \(version)")) }
        guard tableEncoding == 0x3b else { return .failure(.unsupported(hex(UInt64(tableEncoding), prefix: "table encoding "))) }
        guard let pointerSize = EhEncoding.size(of: framePointerEncoding),
              let countSize = EhEncoding.size(of: countEncoding) else {
            return .failure(.unsupported("pointer encodings \(framePointerEncoding)/\(countEncoding)"))
        }
        let countAt = at &+ 4 &+ UInt64(pointerSize)
        let count: UInt64?
        switch countSize {
        case 2: count = load(UInt16.self, atVaddr: countAt).map(UInt64.init)
        case 4: count = load(UInt32.self, atVaddr: countAt).map(UInt64.init)
        default: count = load(UInt64.self, atVaddr: countAt)
        }
        guard let entries = count else { return .failure(.unreadable) }
        let table = countAt &+ UInt64(countSize)
        let (size, tooMany) = entries.multipliedReportingOverflow(by: 8)
        let (last, past) = table.addingReportingOverflow(size &- 1)
        guard entries > 0, !tooMany, !past, fileOffset(ofVaddr: table) != nil, fileOffset(ofVaddr: last) != nil
        else { return .failure(.unreadable) }
        return .success(EhFrameTable(headerVaddr: at, tableVaddr: table, entryCount: entries))
    }
}

enum UnwindTableProblem: Error, Equatable {
    case missing
    case unreadable
    case unsupported(String)
}

enum EhEncoding {
    /// Byte size of a DW_EH_PE value with this encoding; nil for LEB128 and DW_EH_PE_omit.
    static func size(of encoding: UInt8) -> Int? {
        guard encoding != 0xff else { return nil }
        switch encoding & 0x0f {
        case 0x00, 0x04, 0x0c: return 8
        case 0x02, 0x0a: return 2
        case 0x03, 0x0b: return 4
        default: return nil
        }
    }
}
