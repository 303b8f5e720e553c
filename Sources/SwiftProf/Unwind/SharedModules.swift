// What the processes of one run share about the files they map. A hundred
// workers of one server map the same executable and the same libc: each file is
// opened, mapped and its unwind table found once (not once a process), each of
// its addresses symbolized once, and the kernel's addresses looked up once. A
// file is known by the device and inode the kernel's maps give and by its
// path; an address in it by its offset from the load bias, which is all that
// differs from one process to the next (address space layout randomization).
import Synchronization

public final class SharedModules: Sendable {
    /// A mapped file as the kernel's maps name it.
    struct FileIdentity: Hashable, Sendable {
        let device: Substring
        let inode: UInt64
        let path: String
    }

    /// An opened file and its unwind table.
    struct OpenedFile: Sendable {
        let image: ElfImage
        let table: Result<EhFrameTable, UnwindTableProblem>
    }

    /// A symbolized address, less what is the process's own: lines and module name
    /// as the symbolizer gave them, and its bias against the unwinder's.
    struct SymbolizedAddress: Sendable {
        let lines: [FrameLine]
        let module: String
        let biasDifference: UInt64
    }

    private struct State: Sendable {
        var files: [FileIdentity: OpenedFile?] = [:]
        var addresses: [AddressKey: SymbolizedAddress] = [:]
        var kallsyms: (names: Set<String>, loaded: Kallsyms?)?
    }

    private struct AddressKey: Hashable {
        let file: FileIdentity
        let offset: UInt64
    }

    private let state = Mutex(State())

    public init() {}

    /// The file opened by the first process that mapped it, or `open()`'s answer.
    func file(_ identity: FileIdentity, open: () -> OpenedFile?) -> OpenedFile? {
        if let known = state.withLock({ $0.files[identity] }) { return known }
        let opened = open()
        state.withLock { $0.files[identity] = opened }
        return opened
    }

    func symbolized(_ file: FileIdentity, offset: UInt64) -> SymbolizedAddress? {
        state.withLock { $0.addresses[AddressKey(file: file, offset: offset)] }
    }

    func remember(_ file: FileIdentity, offset: UInt64, _ address: SymbolizedAddress) {
        state.withLock { $0.addresses[AddressKey(file: file, offset: offset)] = address }
    }

    /// The kernel's addresses of `names`: the ones loaded for an earlier process when
    /// they cover these, else loaded again for all the names asked so far.
    func kallsyms(_ names: Set<String>, load: (Set<String>) -> Kallsyms?) -> Kallsyms? {
        if let known = state.withLock({ $0.kallsyms }), names.isSubset(of: known.names) { return known.loaded }
        let wanted = names.union(state.withLock { $0.kallsyms?.names ?? [] })
        let loaded = load(wanted)
        state.withLock { $0.kallsyms = (wanted, loaded) }
        return loaded
    }
}
