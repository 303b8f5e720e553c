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

/// One loaded ELF object of the target (a class: the unwinder hands it around
/// for every frame, and a struct of strings and tables was retained field by field).
final class LoadedModule {
    let path: String
    /// How the processes of a run know the file (nil: the vDSO, a core's files).
    let identity: SharedModules.FileIdentity?
    /// The local path the file was read from.
    let openedFrom: String
    let image: ElfImage
    let bias: UInt64
    /// Lowest and highest address of the object's mappings.
    let start: UInt64
    let end: UInt64
    let table: Result<EhFrameTable, UnwindTableProblem>

    init(path: String, identity: SharedModules.FileIdentity?, openedFrom: String, image: ElfImage, bias: UInt64, start: UInt64,
         end: UInt64, table: Result<EhFrameTable, UnwindTableProblem>) {
        self.path = path
        self.identity = identity
        self.openedFrom = openedFrom
        self.image = image
        self.bias = bias
        self.start = start
        self.end = end
        self.table = table
    }
}

/// Where the target's files are opened from.
enum ModuleFiles {
    /// A live process's: through /proc/PID/root (its own mount namespace), else map_files.
    case process
    /// A core's: found beforehand, their build-ids checked, by the path mapped.
    case located([String: LocatedFile])
}

/// A file of a core's process, found on this machine.
struct LocatedFile {
    let file: MappedFile
    /// The local path it was opened from (under --sysroot, or --exe).
    let openedFrom: String
}

final class TargetImage {
    let memory: TargetMemory
    let memoryMap: MemoryMap
    private let files: ModuleFiles
    /// The files other processes of the run opened already.
    let shared: SharedModules?
    private var modules: [String: LoadedModule?] = [:]
    private var goTables: [String: GoPclntab?] = [:]

    convenience init(pid: Int32, memoryMap: MemoryMap, shared: SharedModules? = nil) {
        self.init(memory: .process(pid), memoryMap: memoryMap, files: .process, shared: shared)
    }

    init(memory: TargetMemory, memoryMap: MemoryMap, files: ModuleFiles, shared: SharedModules? = nil) {
        self.memory = memory
        self.memoryMap = memoryMap
        self.files = files
        self.shared = shared
        concurrencyRuntime = memoryMap.regions.filter { $0.path.hasSuffix(TaskRuntime.concurrencyLibrary) }
    }

    /// The mappings of Swift's concurrency runtime (where the task metadata and the task
    /// completion are), found once: every sample's async callers are checked against them.
    let concurrencyRuntime: [MemoryRegion]
    /// Whether the runtime's code is mapped: only then are async callers looked for.
    var hasSwiftConcurrency: Bool { concurrencyRuntime.contains(where: \.isExecutable) }

    var pid: Int32 { memory.processID }

    func isExecutable(_ address: UInt64) -> Bool { memoryMap.region(containing: address)?.isExecutable ?? false }

    /// The path of the file whose code is at `address` when that file was not found
    /// for a core (missing, or another build): there is no unwind info to go on with.
    func missingFile(at address: UInt64) -> String? {
        guard case .located(let located) = files, let region = memoryMap.region(containing: address),
              region.isFileBacked, located[region.path] == nil else { return nil }
        return region.path
    }

    /// The module whose mappings contain `address`, opened on first use.
    func module(containing address: UInt64) -> LoadedModule? {
        // Every frame of every walk asks: the last answer first (a region lookup and
        // a path hashed otherwise).
        if lastModuleRegion.contains(address) { return lastModule }
        guard let region = memoryMap.region(containing: address),
              region.isFileBacked || region.path == "[vdso]" else { return nil }
        let loaded: LoadedModule?
        if let cached = modules[region.path] {
            loaded = cached
        } else {
            loaded = load(region.path)
            modules[region.path] = loaded
        }
        lastModuleRegion = region.start..<region.end
        lastModule = loaded
        return loaded
    }
    private var lastModuleRegion: Range<UInt64> = 0..<0
    private var lastModule: LoadedModule?

    /// The Go module whose Go code (not the C code cgo linked beside it) holds `address`.
    func goCode(containing address: UInt64) -> GoModule? {
        guard let module = goModule(mapping: address), module.function(at: address) != nil else { return nil }
        return module
    }

    /// The Go binary mapped at `address`, if the object there is one.
    func goModule(mapping address: UInt64) -> GoModule? {
        // Asked for every frame of every walk, and nil for all but Go code: the last
        // region's answer first.
        if lastGoRegion.contains(address) { return lastGoModule }
        guard let region = memoryMap.region(containing: address) else { return nil }
        let module = goModule(in: region, address: address)
        lastGoRegion = region.start..<region.end
        lastGoModule = module
        return module
    }
    private var lastGoRegion: Range<UInt64> = 0..<0
    private var lastGoModule: GoModule?

    private func goModule(in region: MemoryRegion, address: UInt64) -> GoModule? {
        guard region.isExecutable, region.isFileBacked else { return nil }
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
        if !wordRegion.contains(address) {
            // An unwind reads many words of one table in a row (.eh_frame_hdr's binary
            // search): the region they come from is kept, with where it maps the file.
            guard let region = memoryMap.region(containing: address), region.isReadable,
                  region.isFileBacked || region.path == "[vdso]" else { return nil }
            wordRegion = region.start..<region.end
            wordRegionWritable = region.isWritable
            wordRegionFileOffset = region.offset
            wordFile = module(containing: address)?.image.source
        }
        if wordRegionWritable {
            liveWordReads += 1
            var word: UInt64 = 0
            let n = withUnsafeMutableBytes(of: &word) { memory.read(address, into: $0) }
            return n == 8 ? word : nil
        }
        // A read-only mapping shows the file's bytes from its offset on (the vDSO's
        // copy starts at its only mapping).
        let (offset, overflow) = (address - wordRegion.lowerBound).addingReportingOverflow(wordRegionFileOffset)
        guard !overflow, offset <= UInt64(Int.max) else { return nil }
        return wordFile?.word(at: Int(offset))
    }
    /// Words read from the target itself (writable mappings), which may change
    /// between walks; file-backed read-only words cannot.
    private(set) var liveWordReads = 0
    private var wordRegion: Range<UInt64> = 0..<0
    private var wordRegionWritable = false
    private var wordRegionFileOffset: UInt64 = 0
    private var wordFile: (any ByteSource)?

    /// The vDSO mapping for libdwfl to read from the process's memory itself (see
    /// Symbolizer); nil for a core, whose vDSO comes with the modules (symbolModules).
    var vdsoForSymbolizer: MemoryRegion? {
        memory.isLive ? memoryMap.regions.first { $0.path == "[vdso]" } : nil
    }

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
        // A core's vDSO: from the bytes the core holds, in a file of its own for libdwfl
        // (a live process's is read from its memory by libdwfl itself, see Symbolizer).
        if case .located = files, let vdso = memoryMap.regions.first(where: { $0.path == "[vdso]" }),
           let module = module(containing: vdso.start), let copy = module.image.source as? CopiedBytes {
            let descriptor = copy.storage.withUnsafeBytes { sp_memory_file($0.baseAddress, $0.count) }
            if descriptor >= 0 {
                result.append(SymbolModule(path: "[vdso]", bias: module.bias, file: "[vdso]", descriptor: descriptor))
            }
        }
        return result
    }

    private func load(_ path: String) -> LoadedModule? {
        let regions = memoryMap.regions(ofFile: path)
        guard let first = regions.min(by: { $0.offset < $1.offset }), let last = regions.last else { return nil }
        var openedFrom = "/proc/\(pid)/root" + path
        var identity: SharedModules.FileIdentity?
        let opened: SharedModules.OpenedFile?
        if path == "[vdso]" {
            openedFrom = path
            opened = Ptrace.readMemory(memory, at: first.start, count: Int(first.end - first.start))
                .flatMap { Self.opened(CopiedBytes(storage: $0)) }
        } else if case .located(let located) = files {
            openedFrom = located[path]?.openedFrom ?? path
            opened = located[path].flatMap { Self.opened($0.file) }
        } else {
            // A deleted or replaced file is still reachable through map_files (root only).
            let mapFile = "/proc/\(pid)/map_files/\(String(first.start, radix: 16))-\(String(first.end, radix: 16))"
            var throughMapFiles = false
            let open = { [openedFrom] () -> SharedModules.OpenedFile? in
                if let file = MappedFile(path: openedFrom) { return Self.opened(file) }
                throughMapFiles = true
                return MappedFile(path: mapFile).flatMap(Self.opened)
            }
            if let shared, let device = first.device, !first.isDeleted {
                identity = SharedModules.FileIdentity(device: device, inode: first.inode, path: path)
                opened = shared.file(identity!, open: open)
            } else {
                opened = open()
            }
            if throughMapFiles { openedFrom = mapFile }
        }
        guard let opened, let bias = opened.image.bias(mappedAt: first.start, fileOffset: first.offset) else { return nil }
        return LoadedModule(path: path, identity: identity, openedFrom: openedFrom, image: opened.image, bias: bias,
                            start: regions[0].start, end: last.end, table: opened.table)
    }

    private static func opened(_ source: any ByteSource) -> SharedModules.OpenedFile? {
        ElfImage(source: source).map { SharedModules.OpenedFile(image: $0, table: $0.ehFrameTable()) }
    }
}
