// libdwfl turns addresses into functions, source lines and inlined frames, the
// way `eu-stack -i -s` does. Modules are reported from the captured maps with
// their files opened through /proc/PID/root, so a target in another mount
// namespace is symbolized from its own files; debug files are found by build-id.
import CLibdw
import CSwiftProf
import Glibc

public struct SymbolizeOptions: Sendable {
    public var names: NameOptions
    public var inlineFrames: Bool
    /// Leave out Swift's thunks (reabstraction, partial application, @objc, dispatch,
    /// protocol witnesses); a frame that is nothing but thunks goes altogether.
    public var hidesThunks: Bool

    public init(names: NameOptions = NameOptions(), inlineFrames: Bool = true, hidesThunks: Bool = false) {
        self.names = names
        self.inlineFrames = inlineFrames
        self.hidesThunks = hidesThunks
    }
}

final class Symbolizer {
    private let dwfl: OpaquePointer
    private let callbacks: UnsafeMutablePointer<Dwfl_Callbacks>
    private let options: SymbolizeOptions
    private var cache: [UInt64: Location] = [:]
    private var asyncFunctions: [UInt64: Bool] = [:]
    /// Per module without .debug_aranges, its units by their ranges (nil: no DWARF).
    private var unitIndexes: [OpaquePointer: CompileUnitIndex?] = [:]

    /// `modules`: every ELF object to report, with its load bias and file;
    /// `vdso`: the target's vDSO mapping, read from its memory by libdwfl.
    init?(pid: Int32, modules: [SymbolModule], vdso: MemoryRegion?, options: SymbolizeOptions) {
        // libdw would ask debuginfod servers when DEBUGINFOD_URLS is set: no network unless asked.
        unsetenv("DEBUGINFOD_URLS")
        callbacks = .allocate(capacity: 1)
        callbacks.initialize(to: Dwfl_Callbacks())
        callbacks.pointee.find_elf = dwfl_linux_proc_find_elf
        callbacks.pointee.find_debuginfo = { module, userdata, name, base, file, debuglink, crc, debugPath in
            // A debug file found by build-id, with compressed sections: its inflated copy
            // instead (DecompressedDebugFile). Looked up before libdwfl's own search,
            // which keeps the file it opens and would ignore another descriptor.
            var bits: UnsafePointer<UInt8>?
            var vaddr: GElf_Addr = 0
            let length = dwfl_module_build_id(module, &bits, &vaddr)
            if length > 1, let bits, let debugPath {
                let id = (0..<Int(length)).map { bits[$0] < 16 ? "0" + String(bits[$0], radix: 16) : String(bits[$0], radix: 16) }
                let standard = "/usr/lib/debug/.build-id/\(id[0])/\(id[1...].joined()).debug"
                if let copy = DecompressedDebugFile.open(standard, buildID: id.joined()) {
                    debugPath.pointee = strdup(copy.path)
                    return copy.descriptor
                }
            }
            return dwfl_standard_find_debuginfo(module, userdata, name, base, file, debuglink, crc, debugPath)
        }
        guard let dwfl = dwfl_begin(callbacks) else {
            callbacks.deallocate()
            return nil
        }
        self.dwfl = dwfl
        self.options = options
        dwfl_report_begin(dwfl)
        for module in modules {
            // libdwfl takes the descriptor over (and closes it).
            _ = dwfl_report_elf(dwfl, module.path, module.file, module.descriptor, module.bias, true)
        }
        if let vdso {
            // dwfl_linux_proc_find_elf reads an in-memory image for a module named this way.
            _ = dwfl_report_module(dwfl, "[vdso: \(pid)]", vdso.start, vdso.end)
        }
        dwfl_report_end(dwfl, nil, nil)
    }

    deinit {
        dwfl_end(dwfl)
        callbacks.deallocate()
    }

    /// Where the target's symbol `name` is (its address in the target), from the
    /// symbol tables of every module; nil when no module defines it.
    func address(ofSymbol name: String) -> UInt64? {
        var found: UInt64?
        forEachDefinedSymbol { symbolName, address in
            guard strcmp(symbolName, name) == 0 else { return true }
            found = address
            return false
        }
        return found
    }

    /// Every defined symbol whose name starts with one of `prefixes`, by name, in one pass.
    func addresses(ofSymbolsWithPrefixes prefixes: [String]) -> [String: UInt64] {
        var found: [String: UInt64] = [:]
        forEachDefinedSymbol { symbolName, address in
            if prefixes.contains(where: { strncmp(symbolName, $0, $0.utf8.count) == 0 }) { found[String(cString: symbolName)] = address }
            return true
        }
        return found
    }

    /// Where `name` is defined in the module whose path ends with `suffix` (not
    /// searching the others: a large program's own table is long).
    func address(ofSymbol name: String, inModuleEndingWith suffix: String) -> UInt64? {
        var found: UInt64?
        forEachDefinedSymbol(inModulesEndingWith: suffix) { symbolName, address in
            guard strcmp(symbolName, name) == 0 else { return true }
            found = address
            return false
        }
        return found
    }

    /// Each symbol a module defines (of those whose path ends with `suffix`), with its
    /// address in the target, until `body` says false.
    private func forEachDefinedSymbol(inModulesEndingWith suffix: String = "", _ body: (UnsafePointer<CChar>, UInt64) -> Bool) {
        for module in modules() {
            if !suffix.isEmpty {
                guard let path = dwfl_module_info(module, nil, nil, nil, nil, nil, nil, nil).map({ String(cString: $0) }),
                      path.hasSuffix(suffix) else { continue }
            }
            let count = dwfl_module_getsymtab(module)
            guard count > 1 else { continue }
            var symbol = GElf_Sym()
            var address: GElf_Addr = 0
            for index in 1..<count {
                guard let symbolName = dwfl_module_getsym_info(module, index, &symbol, &address, nil, nil, nil),
                      symbol.st_shndx != UInt16(SHN_UNDEF) else { continue }
                if !body(symbolName, address) { return }
            }
        }
    }

    private func modules() -> [OpaquePointer] {
        var list: [OpaquePointer] = []
        withUnsafeMutablePointer(to: &list) { pointer in
            _ = dwfl_getmodules(dwfl, { module, _, _, _, argument in
                if let module, let argument { argument.assumingMemoryBound(to: [OpaquePointer].self).pointee.append(module) }
                return 0  // DWARF_CB_OK
            }, pointer, 0)
        }
        return list
    }

    /// The logical frames at `pc`. Return addresses are looked up at pc - 1, inside
    /// the call instruction, so the line is the call's and not the next statement's.
    func location(pc: UInt64, isReturnAddress: Bool) -> Location {
        let address = isReturnAddress ? pc - 1 : pc
        if let cached = cache[address] { return cached }
        let location = lookUp(address)
        cache[address] = location
        return location
    }

    /// Whether the function at `address` is a Swift async function or one of its
    /// partial functions (a Swift symbol whose demangling is async, or that ends in
    /// TQ<n>_ / TY<n>_, as Swift's backtracer tells them).
    func isSwiftAsyncFunction(at address: UInt64) -> Bool {
        if let known = asyncFunctions[address] { return known }
        var answer = false
        if let module = dwfl_addrmodule(dwfl, address) {
            var offset: GElf_Off = 0
            var symbol = GElf_Sym()
            if let name = dwfl_module_addrinfo(module, address, &offset, &symbol, nil, nil, nil).map({ String(cString: $0) }),
               Demangler.isSwiftSymbol(name) {
                answer = SwiftNames.isPartialFunction(name) || SwiftNames.isAsync(Demangler.demangled(name, NameOptions()).display)
            }
        }
        asyncFunctions[address] = answer
        return answer
    }

    /// The frames at `pc` with thunks shown whatever the options say: for a stack
    /// that would otherwise have no frame at all.
    func locationShowingThunks(pc: UInt64, isReturnAddress: Bool) -> Location {
        lookUp(isReturnAddress ? pc - 1 : pc, hidingThunks: false)
    }

    private func lookUp(_ address: UInt64, hidingThunks: Bool = true) -> Location {
        guard let module = dwfl_addrmodule(dwfl, address) else {
            return Location(address: address, lines: [FrameLine(function: "", offset: 0, file: "", line: 0)])
        }
        var bias: GElf_Addr = 0
        _ = dwfl_module_getelf(module, &bias)
        let name = dwfl_module_info(module, nil, nil, nil, nil, nil, nil, nil).map { String(cString: $0) } ?? ""
        // The vDSO was reported under libdwfl's "[vdso: PID]" naming.
        let moduleName = name.hasPrefix("[vdso") ? "[vdso]" : name
        var offset: GElf_Off = 0
        var symbol = GElf_Sym()
        let symbolName = dwfl_module_addrinfo(module, address, &offset, &symbol, nil, nil, nil).map { String(cString: $0) } ?? ""
        var (file, line) = sourceLine(module, address)
        let physicalOffset = symbolName.isEmpty ? 0 : UInt64(offset)

        var lines = scopeFrames(module, address, offset: physicalOffset)
        if lines.isEmpty {
            if symbolName.isEmpty { (file, line) = ("", 0) }
            lines = [FrameLine(function: symbolName, offset: physicalOffset, file: file, line: line)]
        } else if !options.inlineFrames {
            // The physical function only, at the line of the code actually there.
            var outer = lines[lines.count - 1]
            outer.file = file
            outer.line = line
            lines = [outer]
        }
        lines = lines.compactMap { line in
            var frame = line
            let name = Demangler.demangled(frame.function, options.names)
            frame.function = name.display
            return hidingThunks && options.hidesThunks && name.isThunk ? nil : frame
        }
        return Location(address: address, moduleBias: bias, module: moduleName, lines: lines)
    }

    private func sourceLine(_ module: OpaquePointer, _ address: UInt64) -> (String, Int) {
        if let lineRecord = dwfl_module_getsrc(module, address) {
            var line: Int32 = 0
            guard let file = dwfl_lineinfo(lineRecord, nil, &line, nil, nil, nil) else { return ("", 0) }
            return (String(cString: file), Int(line))
        }
        // No .debug_aranges entry: the line table of the unit found by its ranges.
        guard let index = unitIndex(module), var unit = index.unit(containing: address),
              let lineRecord = dwarf_getsrc_die(&unit, address - index.bias),
              let file = dwarf_linesrc(lineRecord, nil, nil) else { return ("", 0) }
        var line: Int32 = 0
        _ = dwarf_lineno(lineRecord, &line)
        return (String(cString: file), Int(line))
    }

    /// The compile unit holding `address` and the module's bias: libdw's lookup
    /// through .debug_aranges, else the units' own ranges (CompileUnitIndex).
    private func withCompileUnit<T>(_ module: OpaquePointer, _ address: UInt64,
                                    _ body: (UnsafeMutablePointer<Dwarf_Die>, Dwarf_Addr) -> T) -> T? {
        var bias: Dwarf_Addr = 0
        if let unit = dwfl_module_addrdie(module, address, &bias) { return body(unit, bias) }
        guard let index = unitIndex(module), var unit = index.unit(containing: address) else { return nil }
        return body(&unit, index.bias)
    }

    private func unitIndex(_ module: OpaquePointer) -> CompileUnitIndex? {
        if let known = unitIndexes[module] { return known }
        let index = CompileUnitIndex(module: module)
        unitIndexes[module] = index
        return index
    }

    /// eu-stack -i's walk: the innermost function-like scope at the address, then
    /// each enclosing inlined_subroutine outwards up to the subprogram. A caller's
    /// line is the call site recorded on the scope inside it.
    private func scopeFrames(_ module: OpaquePointer, _ address: UInt64, offset: UInt64) -> [FrameLine] {
        withCompileUnit(module, address) { cu, bias in scopeFrames(module, address, offset: offset, cu: cu, bias: bias) } ?? []
    }

    private func scopeFrames(_ module: OpaquePointer, _ address: UInt64, offset: UInt64,
                             cu: UnsafeMutablePointer<Dwarf_Die>, bias: Dwarf_Addr) -> [FrameLine] {
        guard var innermost = innermostFunctionScope(cu, address - bias) else { return [] }
        var chain: UnsafeMutablePointer<Dwarf_Die>?
        let chainCount = dwarf_getscopes_die(&innermost, &chain)
        defer { free(chain) }
        guard chainCount > 0, let chain else { return [] }

        let (file, line) = sourceLine(module, address)
        var frames = [FrameLine(function: dieName(&chain[0]), offset: offset, file: file, line: line)]
        var callSite = 0
        for index in 1..<Int(chainCount) where isFunctionScope(&chain[index]) {
            let (callFile, callLine) = callLocation(cu: cu, die: &chain[callSite])
            frames.append(FrameLine(function: dieName(&chain[index]), offset: offset, file: callFile, line: callLine))
            if dwarf_tag(&chain[index]) == Int32(DW_TAG_subprogram) { break }
            callSite = index
        }
        return frames
    }

    /// libdw's lookup, or where it finds no function (Swift's DW_TAG_module hides
    /// them from it), a search that descends into such containers.
    private func innermostFunctionScope(_ cu: UnsafeMutablePointer<Dwarf_Die>, _ address: Dwarf_Addr) -> Dwarf_Die? {
        var scopes: UnsafeMutablePointer<Dwarf_Die>?
        let count = dwarf_getscopes(cu, address, &scopes)
        defer { free(scopes) }
        if count > 0, let scopes, let innermost = (0..<Int(count)).first(where: { isFunctionScope(&scopes[$0]) }) {
            return scopes[innermost]
        }
        return FunctionScopeSearch.innermost(in: cu, at: address)
    }

    private func isFunctionScope(_ die: UnsafeMutablePointer<Dwarf_Die>) -> Bool {
        let tag = dwarf_tag(die)
        return tag == Int32(DW_TAG_subprogram) || tag == Int32(DW_TAG_inlined_subroutine)
            || tag == Int32(DW_TAG_entry_point)
    }

    private func dieName(_ die: UnsafeMutablePointer<Dwarf_Die>) -> String {
        var attribute = Dwarf_Attribute()
        for name in [DW_AT_MIPS_linkage_name, DW_AT_linkage_name] {
            if let found = dwarf_attr_integrate(die, UInt32(name), &attribute), let text = dwarf_formstring(found) {
                return String(cString: text)
            }
        }
        return dwarf_diename(die).map { String(cString: $0) } ?? ""
    }

    private func callLocation(cu: UnsafeMutablePointer<Dwarf_Die>, die: UnsafeMutablePointer<Dwarf_Die>) -> (String, Int) {
        var files: OpaquePointer?
        guard dwarf_getsrcfiles(cu, &files, nil) == 0 else { return ("", 0) }
        var attribute = Dwarf_Attribute()
        var fileIndex: Dwarf_Word = 0, line: Dwarf_Word = 0
        guard dwarf_formudata(dwarf_attr(die, UInt32(DW_AT_call_file), &attribute), &fileIndex) == 0,
              let name = dwarf_filesrc(files, Int(fileIndex), nil, nil) else { return ("", 0) }
        if dwarf_formudata(dwarf_attr(die, UInt32(DW_AT_call_line), &attribute), &line) != 0 { line = 0 }
        return (String(cString: name), Int(line))
    }
}
