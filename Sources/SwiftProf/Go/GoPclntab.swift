// Go's own function table (.gopclntab), read the way the Go runtime reads it:
// function entries, names, the stack-pointer delta of every pc (how Go itself
// unwinds), file:line and the inline tree. It is there in stripped binaries too,
// and it is what Go's profiles print, so Go frames are named from it rather than
// from DWARF (libdw 0.188 finds no compile unit for a Go pc: Go writes no
// .debug_aranges). Formats of Go 1.18 to 1.19 (magic 0xfffffff0) and 1.20 and
// later (0xfffffff1).

/// A function of the table: where it starts and where its record is.
struct GoFunction: Hashable {
    /// Link-time address of the first instruction.
    let entry: UInt64
    /// Link-time address just past the last instruction.
    let end: UInt64
    /// File offset of its `_func` record.
    let record: Int
}

/// One level of inlining at a pc: the inlined function and where, in its
/// caller, the call was.
struct GoInlinedCall {
    let functionID: UInt8
    let name: String
    /// Offset from the physical function's entry of an instruction at the call site.
    let parentPC: UInt64
}

final class GoPclntab {
    enum Layout { case go118, go120 }

    let layout: Layout
    let textStart: UInt64
    private let image: ElfImage
    private let header: Int
    private let functionCount: Int
    private let functionTable: Int
    private let namesAt: Int
    private let compileUnitsAt: Int
    private let filesAt: Int
    private let valuesAt: Int
    /// Link-time address of `go:func.*`, which funcdata offsets are relative to
    /// (from the runtime's module table); nil when it cannot be found, and then
    /// inlined frames are not expanded.
    private let funcdataCandidates: [UInt64]
    /// The candidate that gives every sampled inline tree real function names.
    private lazy var funcdataBase: UInt64? = funcdataCandidates.first { validates(funcdataBase: $0) }
    private var nameCache: [Int32: String] = [:]
    private var fileCache: [UInt32: String] = [:]

    /// The `funcID` of compiler-generated wrappers, which Go's tracebacks leave out.
    /// Its number grows as Go adds special functions (21 in Go 1.19, 23 in 1.27), so
    /// it is read off a function that is always one: a method value's "-fm" wrapper
    /// or a generated equality function.
    private(set) lazy var wrapperFunctionID: UInt8? = {
        for index in 0..<functionCount {
            guard let record = record(index) else { return nil }
            let name = name(record: record)
            if name.hasSuffix("-fm") || name.hasPrefix("type:.eq.") || name.hasPrefix("type..eq."), functionID(record: record) != 0 {
                return functionID(record: record)
            }
        }
        return nil
    }()
    private static let spDeltaTable = 0, fileTable = 1, lineTable = 2
    private static let inlineTreeIndexData = 2, inlineTreeFuncdata = 3

    init?(image: ElfImage) {
        let sections = image.sections()
        // PIE builds put it in .data.rel.ro.gopclntab.
        guard let table = sections.first(where: { $0.name == ".gopclntab" || $0.name == ".data.rel.ro.gopclntab" }), table.hasBytes,
              let magic = image.source.uint32(at: table.offset),
              image.source.byte(at: table.offset + 6) == 1,  // pc quantum: 1 on amd64
              image.source.byte(at: table.offset + 7) == 8 else { return nil }
        switch magic {
        case 0xffff_fff0: layout = .go118
        case 0xffff_fff1: layout = .go120
        default: return nil
        }
        // The header's words are the file's to choose: offsets must lie in the table's
        // section (so no sum of them overflows), before they become Ints.
        func word(_ index: Int) -> UInt64? { image.source.word(at: table.offset + 8 * index) }
        func offset(_ index: Int) -> Int? { word(index).flatMap { $0 < UInt64(table.size) ? Int($0) : nil } }
        guard let count = word(1).flatMap({ $0 > 0 && $0 < 10_000_000 ? Int($0) : nil }), var text = word(3),
              let names = offset(4), let units = offset(5), let files = offset(6), let values = offset(7), let functions = offset(8)
        else { return nil }
        // Newer linkers leave textStart 0 (the runtime takes moduledata.text, which is
        // not where .text starts when gcc linked C code in front of it).
        let module = GoPclntab.findModuleData(image: image, sections: sections, table: table,
                                              textStart: text == 0 ? nil : text)
        if text == 0 {
            guard let moduleText = module?.text else { return nil }
            text = moduleText
        }
        self.image = image
        header = table.offset
        functionCount = count
        textStart = text
        namesAt = table.offset + names
        compileUnitsAt = table.offset + units
        filesAt = table.offset + files
        valuesAt = table.offset + values
        functionTable = table.offset + functions
        funcdataCandidates = module?.funcdataCandidates ?? []
    }

    /// The function holding link-time address `pc`.
    func function(at pc: UInt64) -> GoFunction? {
        guard pc >= textStart, let last = entryOffset(functionCount), pc - textStart < UInt64(last) else { return nil }
        let target = UInt32(pc - textStart)
        var low = 0, high = functionCount
        while high - low > 1 {
            let middle = (low + high) / 2
            guard let entry = entryOffset(middle) else { return nil }
            if entry <= target { low = middle } else { high = middle }
        }
        guard let entry = entryOffset(low), let next = entryOffset(low + 1), entry <= target,
              let record = record(low) else { return nil }
        return GoFunction(entry: textStart &+ UInt64(entry), end: textStart &+ UInt64(next), record: record)
    }

    func name(of function: GoFunction) -> String { name(record: function.record) }

    func functionID(of function: GoFunction) -> UInt8 { functionID(record: function.record) }

    /// How far above sp the return address is, at `pc` (Go's pcsp table).
    func spDelta(_ function: GoFunction, at pc: UInt64) -> Int? {
        value(table: GoPclntab.spDeltaTable, of: function, at: pc).map(Int.init)
    }

    func fileLine(_ function: GoFunction, at pc: UInt64) -> (file: String, line: Int) {
        guard let fileNumber = value(table: GoPclntab.fileTable, of: function, at: pc),
              let line = value(table: GoPclntab.lineTable, of: function, at: pc),
              let unit = image.source.uint32(at: function.record + 32),
              let fileOffset = image.source.uint32(at: compileUnitsAt + 4 * (Int(unit) + Int(fileNumber))),
              fileOffset != UInt32.max else { return ("?", 0) }
        if let cached = fileCache[fileOffset] { return (cached, Int(line)) }
        let file = image.cString(at: filesAt + Int(fileOffset))
        fileCache[fileOffset] = file
        return (file, Int(line))
    }

    /// The inlined call at `pc`, innermost first as Go walks them: nil when the
    /// instruction is the function's own code.
    func inlinedCall(_ function: GoFunction, at pc: UInt64) -> GoInlinedCall? {
        guard let base = funcdataBase, let offset = funcdataOffset(record: function.record, GoPclntab.inlineTreeFuncdata),
              let tree = image.fileOffset(ofVaddr: base &+ UInt64(offset)),
              let index = pcdata(function, GoPclntab.inlineTreeIndexData, at: pc), index >= 0 else { return nil }
        return inlineTreeEntry(tree, Int(index))
    }

    /// Entry `index` of the inline tree at file offset `tree`.
    private func inlineTreeEntry(_ tree: Int, _ index: Int) -> GoInlinedCall? {
        // Go 1.18-1.19: parent int16, funcID, pad, file, line, nameOff, parentPc (20 bytes);
        // 1.20 and later: funcID, pad[3], nameOff, parentPc, startLine (16 bytes).
        let (size, idAt, nameAt, parentAt) = layout == .go118 ? (20, 2, 12, 16) : (16, 0, 4, 8)
        let at = tree + size * index
        guard let id = image.source.byte(at: at + idAt), let nameOffset = image.source.int32(at: at + nameAt),
              let parent = image.source.int32(at: at + parentAt) else { return nil }
        return GoInlinedCall(functionID: id, name: name(offset: nameOffset), parentPC: UInt64(UInt32(bitPattern: parent)))
    }

    /// A Go `[N]string` initialized at link time (its string headers are in the
    /// file, their bytes in .rodata), read from the binary: at most `limit`, up to
    /// the first header that does not point into the file.
    func staticStrings(at address: UInt64, limit: Int) -> [String] {
        var strings: [String] = []
        for index in 0..<limit {
            guard let pointer = image.load(UInt64.self, atVaddr: address &+ 16 &* UInt64(index)),
                  let length = image.load(UInt64.self, atVaddr: address &+ 16 &* UInt64(index) &+ 8), length < 256 else { break }
            if length == 0 {
                strings.append("")
                continue
            }
            guard let start = image.fileOffset(ofVaddr: pointer), image.fileOffset(ofVaddr: pointer &+ length &- 1) != nil,
                  let bytes = image.source.bytes(at: start, count: Int(length)) else { break }
            strings.append(String(decoding: bytes, as: UTF8.self))
        }
        return strings
    }

    // MARK: - Table internals

    private func entryOffset(_ index: Int) -> UInt32? { image.source.uint32(at: functionTable + 8 * index) }

    /// File offset of the `_func` record of function `index`.
    private func record(_ index: Int) -> Int? {
        image.source.uint32(at: functionTable + 8 * index + 4).map { functionTable + Int($0) }
    }

    private func name(offset: Int32) -> String {
        if let cached = nameCache[offset] { return cached }
        let name = offset < 0 ? "" : image.cString(at: namesAt + Int(offset))
        nameCache[offset] = name
        return name
    }

    private var fixedRecordSize: Int { layout == .go118 ? 40 : 44 }

    private func pcdata(_ function: GoFunction, _ table: Int, at pc: UInt64) -> Int32? {
        guard let count = image.source.uint32(at: function.record + 28), table < count,
              let offset = image.source.uint32(at: function.record + fixedRecordSize + 4 * table) else { return nil }
        return value(offset: offset, of: function, at: pc)
    }

    /// Where funcdata `index` of the function whose record is at `record` is, as an
    /// offset from gofunc; nil when the function has none.
    private func funcdataOffset(record: Int, _ index: Int) -> UInt32? {
        guard let count = image.source.byte(at: record + fixedRecordSize - 1), index < count,
              let pcdataCount = image.source.uint32(at: record + 28),
              let offset = image.source.uint32(at: record + fixedRecordSize + 4 * (Int(pcdataCount) + index)),
              offset != UInt32.max else { return nil }
        return offset
    }

    private func name(record: Int) -> String { name(offset: image.source.int32(at: record + 4) ?? -1) }

    private func functionID(record: Int) -> UInt8 {
        image.source.byte(at: record + fixedRecordSize - 4) ?? 0
    }

    private func value(table: Int, of function: GoFunction, at pc: UInt64) -> Int32? {
        guard let offset = image.source.uint32(at: function.record + 16 + 4 * table) else { return nil }
        return value(offset: offset, of: function, at: pc)
    }

    /// Go's pcvalue: (value delta, pc delta) varint pairs from the entry; the value
    /// of the range holding `pc`.
    private func value(offset: UInt32, of function: GoFunction, at pc: UInt64) -> Int32? {
        guard offset != 0 else { return nil }
        var at = valuesAt + Int(offset)
        var value: Int32 = -1
        var rangeEnd = function.entry
        var first = true
        while true {
            guard let valueDelta = varint(&at) else { return nil }
            if valueDelta == 0 && !first { return nil }
            first = false
            value &+= Int32(bitPattern: (valueDelta & 1 != 0) ? ~(valueDelta >> 1) : valueDelta >> 1)
            guard let pcDelta = varint(&at) else { return nil }
            rangeEnd &+= UInt64(pcDelta)
            if pc < rangeEnd { return value }
            if rangeEnd >= function.end { return nil }
        }
    }

    private func varint(_ at: inout Int) -> UInt32? {
        var result: UInt32 = 0
        var shift: UInt32 = 0
        while shift < 35 {
            guard let byte = image.source.byte(at: at) else { return nil }
            at += 1
            result |= UInt32(byte & 0x7f) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
        return nil
    }

    /// The runtime's module table (`runtime.firstmoduledata`) starts with a pointer
    /// to the pclntab header and lives in .noptrdata (Go 1.26 and later: a section of
    /// its own); its 23rd word is `text`, and `gofunc` is one of its words 37 to 46,
    /// depending on the version. Found by content, so stripped binaries work: the
    /// candidates for gofunc are the words there that point into the file, and the
    /// one whose inline trees name real functions is kept (see `validates`).
    private static func findModuleData(image: ElfImage, sections: [ElfSection], table: ElfSection,
                                       textStart: UInt64?) -> (text: UInt64, funcdataCandidates: [UInt64])? {
        guard let code = sections.first(where: { $0.name == ".text" }) else { return nil }
        for data in sections where [".go.module", ".noptrdata"].contains(data.name) && data.hasBytes {
            var at = data.offset
            while at + 8 * 48 <= data.offset + data.size {
                defer { at += 8 }
                guard image.source.word(at: at) == table.address,
                      let text = image.source.word(at: at + 8 * 22), code.contains(text),
                      textStart == nil || text == textStart else { continue }
                let candidates = (36..<47).compactMap { image.source.word(at: at + 8 * $0) }.filter { word in
                    sections.contains { $0.hasBytes && $0.address != 0 && $0.contains(word) && $0.name != ".text" }
                }
                return (text, candidates)
            }
        }
        return nil
    }

    /// Whether funcdata offsets taken from `base` lead, for the first functions that
    /// have an inline tree, to entries whose names are Go function names.
    private func validates(funcdataBase base: UInt64) -> Bool {
        var checked = 0
        for index in 0..<functionCount where checked < 8 {
            guard let record = record(index) else { return false }
            guard let offset = funcdataOffset(record: record, GoPclntab.inlineTreeFuncdata) else { continue }
            guard let tree = image.fileOffset(ofVaddr: base &+ UInt64(offset)), let name = inlineTreeEntry(tree, 0)?.name,
                  name.contains("."), name.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) else { return false }
            checked += 1
        }
        return checked > 0
    }
}
