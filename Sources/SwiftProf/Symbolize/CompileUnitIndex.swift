// The compile unit that holds an address, found by the units' own address ranges.
//
// libdw (0.188 here) finds a unit through .debug_aranges only, and swiftc, clang
// and recent rustc leave that section out unless asked: every lookup in such a
// module fails, and its frames get no file:line and no inlined frames although
// .debug_line has them (binutils' addr2line reads the units' ranges and finds
// them). This index is what addr2line does: every unit's DW_AT_ranges or
// low_pc/high_pc, read once per module, sorted, searched by address.
import CLibdw

final class CompileUnitIndex {
    private struct Span {
        var start: UInt64
        var end: UInt64
        var unit: Int
    }

    /// What the module's addresses are shifted by from its DWARF's.
    let bias: Dwarf_Addr
    private var units: [Dwarf_Die] = []
    /// Sorted by start; spans of different units do not overlap in a sane module,
    /// and where a hostile one makes them, the first unit that covers wins.
    private let spans: [Span]

    /// nil when the module has no DWARF.
    init?(module: OpaquePointer) {
        var bias: Dwarf_Addr = 0
        guard let dwarf = dwfl_module_getdwarf(module, &bias) else { return nil }
        self.bias = bias
        var found: [Span] = []
        var unit: OpaquePointer?
        var next: OpaquePointer?
        var version: Dwarf_Half = 0
        var unitType: UInt8 = 0
        var die = Dwarf_Die()
        var subDie = Dwarf_Die()
        while dwarf_get_units(dwarf, unit, &next, &version, &unitType, &die, &subDie) == 0 {
            unit = next
            // Type units hold no code.
            guard unitType == UInt8(DW_UT_compile) || unitType == UInt8(DW_UT_partial)
                || unitType == UInt8(DW_UT_skeleton) else { continue }
            var offset: ptrdiff_t = 0
            var base: Dwarf_Addr = 0, start: Dwarf_Addr = 0, end: Dwarf_Addr = 0
            var index: Int?
            // A bound on what a unit's list may hold: the module chooses these bytes.
            for _ in 0..<100_000 {
                offset = dwarf_ranges(&die, offset, &base, &start, &end)
                guard offset > 0 else { break }
                guard end > start else { continue }
                if index == nil {
                    index = units.count
                    units.append(die)
                }
                found.append(Span(start: start, end: end, unit: index!))
            }
        }
        spans = found.sorted { ($0.start, $0.unit) < ($1.start, $1.unit) }
    }

    /// The unit whose ranges hold `moduleAddress` (an address in the process).
    func unit(containing moduleAddress: UInt64) -> Dwarf_Die? {
        guard moduleAddress >= bias else { return nil }
        let address = moduleAddress - bias
        // The last span starting at or before the address; earlier ones may be longer
        // (a unit's one big range around others' small ones), so look back a little.
        var low = 0, high = spans.count
        while low < high {
            let middle = (low + high) / 2
            if spans[middle].start <= address { low = middle + 1 } else { high = middle }
        }
        var index = low - 1
        var looked = 0
        while index >= 0, looked < 64 {
            if spans[index].start <= address, address < spans[index].end { return units[spans[index].unit] }
            index -= 1
            looked += 1
        }
        return nil
    }
}
