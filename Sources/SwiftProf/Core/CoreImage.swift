// What a core's process had mapped, found on this machine: its address space as
// /proc/PID/maps would have listed it (from PT_LOAD and NT_FILE), and each file
// it mapped, looked up under --sysroot (the executable also by --exe) and kept
// only when its build-id is the one the core recorded.

/// Where to look for a core's files.
public struct CoreFileOptions: Sendable {
    /// The executable, when it is not where the core says (or has been rebuilt since).
    public var executable: String?
    /// The root the core's paths are under (a container's, another machine's copy); "" for /.
    public var sysroot = ""

    public init(executable: String? = nil, sysroot: String = "") {
        self.executable = executable
        self.sysroot = sysroot
    }
}

struct CoreImage {
    let core: CoreFile
    let memory: CoreMemory
    let memoryMap: MemoryMap
    let image: TargetImage
    /// One line a mapped file that was not used, and why (missing, another build).
    let missingFiles: [String]

    init(core: CoreFile, files options: CoreFileOptions) throws(CoreError) {
        self.core = core
        let memory = CoreMemory(bytes: core.bytes, segments: core.segments, processID: core.processID)
        let executable = core.entryAddress.flatMap { entry in core.mappings.first { entry >= $0.start && entry < $0.end } }?.path
        var located: [String: LocatedFile] = [:]
        var images: [String: ElfImage] = [:]
        var missing: [String] = []
        var seen: Set<String> = []
        for mapping in core.mappings where !seen.contains(mapping.path) {
            seen.insert(mapping.path)
            let isExecutable = mapping.path == executable
            let candidate = isExecutable ? options.executable ?? options.sysroot + mapping.path : options.sysroot + mapping.path
            let recorded = CoreImage.recordedBuildID(of: mapping.path, in: core, memory: memory)
            guard let file = MappedFile(path: candidate) ?? CoreImage.undeleted(candidate) else {
                if isExecutable {
                    throw CoreError(.unreadable, "the executable \(NameQuoting.quoted(mapping.path)) is not found at \(NameQuoting.quoted(candidate)): "
                                    + "give it with --exe PATH (or the root its files are under with --sysroot DIR)")
                }
                // Not an ELF object (a mapped data file, a font) is no loss: only code is looked for.
                if recorded != nil { missing.append("\(NameQuoting.quoted(mapping.path)): not found at \(NameQuoting.quoted(candidate)); its frames stay addresses") }
                continue
            }
            let image = ElfImage(source: file)
            let found = image.flatMap { ElfNotes.buildID(of: $0) }
            if let recorded, found != recorded {
                let problem = "\(NameQuoting.quoted(candidate)) is another build than the core's \(NameQuoting.quoted(mapping.path)) "
                    + "(build-id \(found.map(hexDigits) ?? "none"), the core's \(hexDigits(recorded)))"
                if isExecutable { throw CoreError(.malformed, problem + ": give the matching one with --exe PATH") }
                missing.append(problem + "; its frames stay addresses")
                continue
            }
            located[mapping.path] = LocatedFile(file: file, openedFrom: candidate)
            images[mapping.path] = image
        }
        let memoryMap = CoreImage.memoryMap(core, images: images)
        for region in memoryMap.regions where region.isFileBacked {
            guard let file = located[region.path]?.file else { continue }
            memory.addFile(file, start: region.start, end: region.end, fileOffset: region.offset)
        }
        self.memory = memory
        self.memoryMap = memoryMap
        self.missingFiles = missing
        image = TargetImage(memory: .core(memory), memoryMap: memoryMap, files: .located(located))
    }

    /// A file mapped when it had already been deleted: looked for by its name without " (deleted)".
    private static func undeleted(_ path: String) -> MappedFile? {
        path.hasSuffix(" (deleted)") ? MappedFile(path: String(path.dropLast(" (deleted)".count))) : nil
    }

    /// The regions as /proc/PID/maps listed them: each PT_LOAD, with the file NT_FILE maps
    /// there; and each file mapping the core left out altogether (gcore writes no segment
    /// for code it can read from the file), with the permissions of the file's own segment
    /// at that offset (unknown, so not executable, when the file was not found).
    static func memoryMap(_ core: CoreFile, images: [String: ElfImage]) -> MemoryMap {
        func mapping(at address: UInt64) -> CoreFileMapping? { core.mappings.first { address >= $0.start && address < $0.end } }
        var regions = core.segments.map { segment in
            let mapping = mapping(at: segment.start)
            return region(start: segment.start, end: segment.end, flags: segment.flags,
                          offset: mapping.map { $0.fileOffset &+ (segment.start - $0.start) } ?? 0,
                          path: mapping?.path ?? (segment.start == core.vdsoAddress ? "[vdso]" : ""))
        }
        for mapping in core.mappings where !core.segments.contains(where: { $0.start < mapping.end && mapping.start < $0.end }) {
            let page: UInt64 = 4096
            let flags = images[mapping.path]?.segments.first { $0.type == ElfSegment.load && $0.offset & ~(page - 1) == mapping.fileOffset }?.flags ?? 4
            regions.append(region(start: mapping.start, end: mapping.end, flags: flags, offset: mapping.fileOffset, path: mapping.path))
        }
        return MemoryMap(regions: regions)
    }

    private static func region(start: UInt64, end: UInt64, flags: UInt32, offset: UInt64, path: String) -> MemoryRegion {
        let permissions = (flags & 4 != 0 ? "r" : "-") + (flags & 2 != 0 ? "w" : "-") + (flags & 1 != 0 ? "x" : "-") + "p"
        let offsetDigits = String(offset, radix: 16)
        let line = String(start, radix: 16) + "-" + String(end, radix: 16) + " " + permissions + " "
            + String(repeating: "0", count: max(0, 8 - offsetDigits.count)) + offsetDigits
            // The path is the target's (NT_FILE's bytes): a newline is written as the kernel
            // writes it in /proc/PID/maps, \012, so that it cannot start a line of its own.
            + " 00:00 0" + (path.isEmpty ? "" : String(repeating: " ", count: 19) + path.replacingNewlines)
        return MemoryRegion(start: start, end: end, permissions: permissions, offset: offset, inode: 0, path: path, line: line,
                            isExecutable: flags & 1 != 0, isReadable: flags & 4 != 0, isWritable: flags & 2 != 0,
                            isFileBacked: path.hasPrefix("/"))
    }

    /// The build-id of the ELF file mapped at `path`, from the first page of its first
    /// mapping, which the core holds (the kernel and gcore dump it): its program headers
    /// and notes, read by libelf as the file's own are (ElfImage).
    private static func recordedBuildID(of path: String, in core: CoreFile, memory: CoreMemory) -> [UInt8]? {
        guard let first = core.mappings.first(where: { $0.path == path && $0.fileOffset == 0 }),
              let page = Ptrace.readMemory(.core(memory), at: first.start, count: Int(min(first.end - first.start, 4096))),
              let header = ElfImage(source: CopiedBytes(storage: page)) else { return nil }
        return ElfNotes.buildID(of: header)
    }
}

/// NT_GNU_BUILD_ID, from a block of ELF notes.
enum ElfNotes {
    static func buildID(in notes: [UInt8]) -> [UInt8]? {
        var at = 0
        func u32(_ offset: Int) -> Int { (0..<4).reduce(0) { $0 | Int(notes[offset + $1]) << (8 * $1) } }
        while at + 12 <= notes.count {
            let nameSize = u32(at), descSize = u32(at + 4), type = u32(at + 8)
            let name = at + 12, desc = name + (nameSize + 3) & ~3, next = desc + (descSize + 3) & ~3
            guard nameSize <= notes.count, descSize <= notes.count, next <= notes.count, next > at else { return nil }
            if type == 3, nameSize == 4, notes[name..<name + 4].elementsEqual("GNU\0".utf8) {
                return Array(notes[desc..<desc + descSize])
            }
            at = next
        }
        return nil
    }

    /// A file's build-id, from its PT_NOTE segments.
    static func buildID(of image: ElfImage) -> [UInt8]? {
        for segment in image.segments where segment.type == 4 && segment.fileSize <= 1 << 16 {
            guard segment.offset <= UInt64(Int.max), let notes = image.source.bytes(at: Int(segment.offset), count: Int(segment.fileSize))
            else { continue }
            if let id = buildID(in: notes) { return id }
        }
        return nil
    }
}

extension String {
    fileprivate var replacingNewlines: String {
        contains("\n") ? split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\\012") : self
    }
}

private func hexDigits(_ bytes: [UInt8]) -> String {
    bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}
