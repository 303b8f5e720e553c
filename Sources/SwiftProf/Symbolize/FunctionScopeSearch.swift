// The innermost function or inlined call holding an address, searched through
// every DIE that can own one.
//
// libdw's dwarf_getscopes skips the children of a DIE that has no address
// attributes, and swiftc puts a module's functions inside a DW_TAG_module that
// has none: in a Swift binary it finds no function for most addresses, and their
// inlined frames vanish (binutils' addr2line, which descends, shows them). This
// search descends into such containers (modules, namespaces, types) and into
// scopes that hold the address, and keeps the deepest function-like one.
import CLibdw

enum FunctionScopeSearch {
    /// A bound on the DIEs looked at: a hostile module chooses their number and depth.
    private static let maximumVisits = 1_000_000
    private static let maximumDepth = 256

    static func innermost(in unit: UnsafeMutablePointer<Dwarf_Die>, at address: Dwarf_Addr) -> Dwarf_Die? {
        var visits = 0
        var found: Dwarf_Die?
        search(children: unit, address: address, depth: 0, visits: &visits, found: &found)
        return found
    }

    private static func search(children parent: UnsafeMutablePointer<Dwarf_Die>, address: Dwarf_Addr, depth: Int,
                               visits: inout Int, found: inout Dwarf_Die?) {
        guard depth < maximumDepth else { return }
        var die = Dwarf_Die()
        guard dwarf_child(parent, &die) == 0 else { return }
        while visits < maximumVisits {
            visits += 1
            let tag = dwarf_tag(&die)
            if isContainer(tag) {
                search(children: &die, address: address, depth: depth + 1, visits: &visits, found: &found)
            } else if holdsCode(tag), dwarf_haspc(&die, address) == 1 {
                if isFunction(tag) { found = die }
                // Scopes nest: the one holding the address is the only one to enter.
                search(children: &die, address: address, depth: depth + 1, visits: &visits, found: &found)
                return
            }
            var next = Dwarf_Die()
            guard dwarf_siblingof(&die, &next) == 0 else { return }
            die = next
        }
    }

    private static func isFunction(_ tag: Int32) -> Bool {
        tag == Int32(DW_TAG_subprogram) || tag == Int32(DW_TAG_inlined_subroutine) || tag == Int32(DW_TAG_entry_point)
    }

    private static func holdsCode(_ tag: Int32) -> Bool {
        isFunction(tag) || tag == Int32(DW_TAG_lexical_block) || tag == Int32(DW_TAG_try_block)
            || tag == Int32(DW_TAG_catch_block) || tag == Int32(DW_TAG_with_stmt)
    }

    /// DIEs without addresses of their own that can own functions.
    private static func isContainer(_ tag: Int32) -> Bool {
        tag == Int32(DW_TAG_module) || tag == Int32(DW_TAG_namespace) || tag == Int32(DW_TAG_class_type)
            || tag == Int32(DW_TAG_structure_type) || tag == Int32(DW_TAG_union_type)
    }
}
