// The target's code and unwind tables, as the unwinder reads them: each ELF
// mapped by the target, opened locally (through /proc/PID/root, so a target in
// a container is read from its own filesystem), and the vDSO copied once.
import CSwiftProf

/// An object for the symbolizer: where it is loaded, and how to read it.
struct SymbolModule {
    let path: String
    let bias: UInt64
    let file: String
    /// An open descriptor the symbolizer takes over, or -1 to open `file`.
    let descriptor: Int32
}

/// One loaded ELF object of the target.
struct LoadedModule {
    let path: String
    /// The local path the file was read from.
    let openedFrom: String
    let image: ElfImage
    let bias: UInt64
    /// Lowest and highest address of the object's mappings.
    let start: UInt64
    let end: UInt64
    let table: Result<EhFrameTable, UnwindTableProblem>

    func word(at address: UInt64) -> UInt64? { image.load(UInt64.self, atVaddr: address &- bias) }
}

final class TargetImage {
    let pid: Int32
    let memoryMap: MemoryMap
    private var modules: [String: LoadedModule?] = [:]
    private var goTables: [String: GoPclntab?] = [:]

    init(pid: Int32, memoryMap: MemoryMap) {
        self.pid = pid
        self.memoryMap = memoryMap
    }

    func isExecutable(_ address: UInt64) -> Bool { memoryMap.region(containing: address)?.isExecutable ?? false }

    /// The module whose mappings contain `address`, opened on first use.
    func module(containing address: UInt64) -> LoadedModule? {
        guard let region = memoryMap.region(containing: address),
              region.isFileBacked || region.path == "[vdso]" else { return nil }
        if let cached = modules[region.path] { return cached }
        let loaded = load(region.path)
        modules[region.path] = loaded
        return loaded
    }

    /// The Go module whose Go code (not the C code cgo linked beside it) holds `address`.
    func goCode(containing address: UInt64) -> GoModule? {
        guard let module = goModule(mapping: address), module.function(at: address) != nil else { return nil }
        return module
    }

    /// The Go binary mapped at `address`, if the object there is one.
    func goModule(mapping address: UInt64) -> GoModule? {
        guard let region = memoryMap.region(containing: address), region.isExecutable, region.isFileBacked else { return nil }
        let table: GoPclntab?
        if let cached = goTables[region.path] {
            table = cached
        } else {
            table = module(containing: address).flatMap { GoPclntab(image: $0.image) }
            goTables[region.path] = table
        }
        guard let table, let loaded = module(containing: address) else { return nil }
        return GoModule(table: table, bias: loaded.bias, path: loaded.path)
    }

    /// A word of file-backed memory: read-only mappings from the local copy of the
    /// file; writable ones (a personality pointer in .data, say) from the target,
    /// since relocation has changed them. Anonymous memory is not served.
    func word(at address: UInt64) -> UInt64? {
        let source: WordSource
        if let last = lastWordSource, address >= last.start, address < last.end {
            source = last
        } else {
            guard let region = memoryMap.region(containing: address), region.isReadable,
                  region.isFileBacked || region.path == "[vdso]" else { return nil }
            source = WordSource(start: region.start, end: region.end, writable: region.permissions.contains("w"),
                                module: module(containing: address))
            lastWordSource = source
        }
        if source.writable {
            var word: UInt64 = 0
            let n = withUnsafeMutableBytes(of: &word) { sp_read_memory(pid, address, $0.baseAddress, 8) }
            return n == 8 ? word : nil
        }
        return source.module?.word(at: address)
    }

    /// Where the last word came from: an unwind reads many words of one table in a row
    /// (.eh_frame_hdr's binary search), each a region and a module lookup otherwise.
    private struct WordSource {
        let start: UInt64
        let end: UInt64
        let writable: Bool
        let module: LoadedModule?
    }
    private var lastWordSource: WordSource?

    /// Every ELF object with code in the target, with its load bias and a descriptor
    /// of the file already open (or -1 and a path to open), for the symbolizer.
    func symbolModules() -> [SymbolModule] {
        var seen: Set<String> = []
        var result: [SymbolModule] = []
        for region in memoryMap.regions where region.isExecutable && region.isFileBacked && !seen.contains(region.path) {
            seen.insert(region.path)
            guard let module = module(containing: region.start) else { continue }
            let descriptor = (module.image.source as? MappedFile)?.duplicateDescriptor() ?? -1
            result.append(SymbolModule(path: module.path, bias: module.bias, file: module.openedFrom, descriptor: descriptor))
        }
        return result
    }

    private func load(_ path: String) -> LoadedModule? {
        let regions = memoryMap.regions(ofFile: path)
        guard let first = regions.min(by: { $0.offset < $1.offset }), let last = regions.last else { return nil }
        let source: (any ByteSource)?
        var openedFrom = "/proc/\(pid)/root" + path
        if path == "[vdso]" {
            var bytes = [UInt8](repeating: 0, count: Int(first.end - first.start))
            let n = bytes.withUnsafeMutableBytes { sp_read_memory(pid, first.start, $0.baseAddress, $0.count) }
            source = n == bytes.count ? CopiedBytes(storage: bytes) : nil
        } else {
            // A deleted or replaced file is still reachable through map_files (root only).
            let mapFile = "/proc/\(pid)/map_files/\(String(first.start, radix: 16))-\(String(first.end, radix: 16))"
            if let file = MappedFile(path: openedFrom) {
                source = file
            } else {
                source = MappedFile(path: mapFile)
                openedFrom = mapFile
            }
        }
        guard let source, let image = ElfImage(source: source),
              let bias = image.bias(mappedAt: first.start, fileOffset: first.offset) else { return nil }
        return LoadedModule(path: path, openedFrom: openedFrom, image: image, bias: bias, start: regions[0].start,
                            end: last.end, table: image.ehFrameTable())
    }
}
