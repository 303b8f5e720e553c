// Where the Go runtime keeps its goroutines, read from the binary's DWARF type
// information rather than hard-coded: the offsets of runtime.g's fields move
// between Go versions, the DWARF of each binary says where they are.
import CLibdw
import CSwiftProf
import Glibc

struct GoRuntimeLayout: Equatable {
    /// runtime.g
    var gSize = 0
    var stackHi = 0
    var schedSP = 0
    var schedPC = 0
    var syscallSP = 0
    var syscallPC = 0
    var status = 0
    var goid = 0
    var waitReason = 0
    var startPC = 0
    var m = 0
    /// runtime.g.waitsince (nanotime when it blocked, set by the runtime at times) and
    /// lockedm, for the traceback header's ", N minutes" and ", locked to thread":
    /// where the DWARF has them.
    var waitSince: Int?
    var lockedM: Int?
    /// runtime.g.labels: a pointer to runtime/pprof's labelMap, which is a
    /// map[string]string up to Go 1.23 and a struct holding a sorted []{Key, Value
    /// string} after (`labelsAreList`, known by the struct's DWARF).
    var labels: Int?
    var labelsAreList = false
    /// Link-time address of runtime.debug.tracebacklabels (an atomic int32; Go 1.26
    /// on): when 1, tracebacks print each goroutine's labels after its state.
    var tracebackLabels: UInt64?
    /// runtime.m.procid: the thread id of the M running a goroutine.
    var mProcID = 0
    /// runtime.m.curg and .alllink, and the link-time address of runtime.allm: which
    /// goroutine each thread runs now (for the labels of a sample), where the DWARF has them.
    var mCurG: Int?
    var mAllLink: Int?
    var allm: UInt64?
    /// Link-time address of `runtime.allgs`, a []*g.
    var allgs: UInt64 = 0
    /// Link-time address of `runtime.waitReasonStrings`, a [N]string, when the DWARF has it.
    var waitReasonStrings: UInt64?

    enum Problem: Error, Equatable, CustomStringConvertible {
        case noDebugInfo
        case missing(String)

        var description: String {
            switch self {
            case .noDebugInfo: return "it has no DWARF (built with -ldflags=-w or stripped)"
            case .missing(let what): return "its DWARF has no \(what)"
            }
        }
    }

    /// Reads the layout from the ELF file open at `descriptor` (not closed).
    static func read(descriptor: Int32) -> Result<GoRuntimeLayout, Problem> {
        var handle = sp_type_dwarf()
        guard sp_type_dwarf_open(descriptor, &handle) == 0, let dwarf = OpaquePointer(handle.dwarf) else { return .failure(.noDebugInfo) }
        defer { sp_type_dwarf_close(&handle) }
        var wanted: [String: Dwarf_Die] = [:]
        let names: Set<String> = ["runtime.g", "runtime.m", "runtime.allgs", "runtime.waitReasonStrings", "runtime/pprof.labelMap",
                                  "runtime.debug", "runtime.allm"]
        var offset: Dwarf_Off = 0, next: Dwarf_Off = 0, headerSize = 0
        scan: while dwarf_nextcu(dwarf, offset, &next, &headerSize, nil, nil, nil) == 0 {
            defer { offset = next }
            var unit = Dwarf_Die(), child = Dwarf_Die()
            guard dwarf_offdie(dwarf, offset + Dwarf_Off(headerSize), &unit) != nil, dwarf_child(&unit, &child) == 0 else { continue }
            repeat {
                let tag = dwarf_tag(&child)
                guard tag == Int32(DW_TAG_structure_type) || tag == Int32(DW_TAG_variable),
                      let name = dwarf_diename(&child).map({ String(cString: $0) }), names.contains(name),
                      wanted[name] == nil, tag == Int32(DW_TAG_variable) || dwarf_haschildren(&child) != 0 else { continue }
                wanted[name] = child
                if wanted.count == names.count { break scan }
            } while nextSibling(&child)
        }
        guard var g = wanted["runtime.g"] else { return .failure(.missing("type runtime.g")) }
        guard var m = wanted["runtime.m"] else { return .failure(.missing("type runtime.m")) }
        guard var allgs = wanted["runtime.allgs"], let address = staticAddress(&allgs) else {
            return .failure(.missing("variable runtime.allgs"))
        }
        let gFields = members(&g)
        let mFields = members(&m)
        var layout = GoRuntimeLayout(gSize: Int(dwarf_bytesize(&g)), allgs: address)
        if var reasons = wanted["runtime.waitReasonStrings"] { layout.waitReasonStrings = staticAddress(&reasons) }
        if var debug = wanted["runtime.debug"], let address = staticAddress(&debug) {
            var attribute = Dwarf_Attribute()
            var type = Dwarf_Die()
            if dwarf_formref_die(dwarf_attr(&debug, UInt32(DW_AT_type), &attribute), &type) != nil,
               let offset = members(&type)["tracebacklabels"]?.offset {
                layout.tracebackLabels = address + UInt64(offset)
            }
        }
        func field(_ path: String, in fields: [String: (offset: Int, type: Dwarf_Die?)]) -> Int? {
            let parts = path.split(separator: ".").map(String.init)
            guard let first = fields[parts[0]] else { return nil }
            guard parts.count == 2 else { return first.offset }
            guard var type = first.type, let inner = members(&type)[parts[1]] else { return nil }
            return first.offset + inner.offset
        }
        let needed: [(String, WritableKeyPath<GoRuntimeLayout, Int>)] = [
            ("stack.hi", \.stackHi), ("sched.sp", \.schedSP), ("sched.pc", \.schedPC), ("syscallsp", \.syscallSP),
            ("syscallpc", \.syscallPC), ("atomicstatus", \.status), ("goid", \.goid), ("waitreason", \.waitReason),
            ("startpc", \.startPC), ("m", \.m),
        ]
        for (path, keyPath) in needed {
            guard let offset = field(path, in: gFields) else { return .failure(.missing("field runtime.g.\(path)")) }
            layout[keyPath: keyPath] = offset
        }
        layout.waitSince = field("waitsince", in: gFields)
        layout.labels = field("labels", in: gFields)
        layout.labelsAreList = wanted["runtime/pprof.labelMap"] != nil
        layout.lockedM = field("lockedm", in: gFields)
        guard let procid = mFields["procid"]?.offset else { return .failure(.missing("field runtime.m.procid")) }
        layout.mProcID = procid
        layout.mCurG = mFields["curg"]?.offset
        layout.mAllLink = mFields["alllink"]?.offset
        if var allm = wanted["runtime.allm"] { layout.allm = staticAddress(&allm) }
        return .success(layout)
    }

    /// A struct's members by name: offset and type (typedefs followed).
    private static func members(_ structure: inout Dwarf_Die) -> [String: (offset: Int, type: Dwarf_Die?)] {
        var result: [String: (offset: Int, type: Dwarf_Die?)] = [:]
        var member = Dwarf_Die()
        guard dwarf_child(&structure, &member) == 0 else { return result }
        repeat {
            guard dwarf_tag(&member) == Int32(DW_TAG_member), let name = dwarf_diename(&member) else { continue }
            var attribute = Dwarf_Attribute()
            var offset: Dwarf_Word = 0
            guard dwarf_formudata(dwarf_attr(&member, UInt32(DW_AT_data_member_location), &attribute), &offset) == 0 else { continue }
            var type = Dwarf_Die()
            var resolved: Dwarf_Die?
            if dwarf_formref_die(dwarf_attr(&member, UInt32(DW_AT_type), &attribute), &type) != nil {
                while dwarf_tag(&type) == Int32(DW_TAG_typedef),
                      dwarf_formref_die(dwarf_attr(&type, UInt32(DW_AT_type), &attribute), &type) != nil {}
                resolved = type
            }
            result[String(cString: name)] = (Int(offset), resolved)
        } while nextSibling(&member)
        return result
    }

    private static func nextSibling(_ die: inout Dwarf_Die) -> Bool {
        var current = die
        return dwarf_siblingof(&current, &die) == 0
    }

    /// A variable's address when its location is a single DW_OP_addr.
    private static func staticAddress(_ variable: inout Dwarf_Die) -> UInt64? {
        var attribute = Dwarf_Attribute()
        var block = Dwarf_Block()
        guard dwarf_attr(&variable, UInt32(DW_AT_location), &attribute) != nil, dwarf_formblock(&attribute, &block) == 0,
              block.length == 9, let data = block.data, data[0] == UInt8(DW_OP_addr) else { return nil }
        return (1...8).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64(data[$1]) }
    }
}
