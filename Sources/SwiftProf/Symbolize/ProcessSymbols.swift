// A process's symbols when other processes of the run may have looked its
// addresses up already (SharedModules): libdw is opened on the process only for
// an address no other process had, and what it says is shared back.

final class ProcessSymbols {
    let image: TargetImage
    private let open: () -> Symbolizer?
    /// Opened on first need.
    private(set) lazy var symbolizer: Symbolizer? = open()

    init(image: TargetImage, open: @escaping () -> Symbolizer?) {
        self.image = image
        self.open = open
    }

    init(image: TargetImage, symbolizer: Symbolizer?) {
        self.image = image
        open = { symbolizer }
    }

    /// The frames at `pc` (return addresses looked up at pc - 1, as Symbolizer's).
    /// nil: no symbolizer could be opened.
    func location(pc: UInt64, isReturnAddress: Bool) -> Location? {
        let address = isReturnAddress ? pc - 1 : pc
        guard let shared = image.shared else { return symbolizer?.location(pc: pc, isReturnAddress: isReturnAddress) }
        // Anonymous memory (a lock on the heap, JIT code) is in no object: nothing to open libdw for.
        guard let region = image.memoryMap.region(containing: address), region.isFileBacked || region.path == "[vdso]" else {
            return Location(address: address, lines: [FrameLine(function: "", offset: 0, file: "", line: 0)])
        }
        guard let module = image.module(containing: address), let identity = module.identity else {
            return symbolizer?.location(pc: pc, isReturnAddress: isReturnAddress)
        }
        let offset = address &- module.bias
        if let known = shared.symbolized(identity, offset: offset) {
            return Location(address: address, moduleBias: module.bias &+ known.biasDifference, module: known.module, lines: known.lines)
        }
        guard let location = symbolizer?.location(pc: pc, isReturnAddress: isReturnAddress) else { return nil }
        shared.remember(identity, offset: offset, .init(lines: location.lines, module: location.module,
                                                        biasDifference: location.moduleBias &- module.bias))
        return location
    }
}
