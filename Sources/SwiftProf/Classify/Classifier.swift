// Gives every logical frame of a stack one layer: kernel frames are the
// kernel's; the user frame that made the system call, and the wrappers around
// it, are the syscall layer; the rules decide runtime or app for the rest.

public struct Classifier: Sendable {
    public var rules: LayerRules

    public init(rules: LayerRules = .standard()) { self.rules = rules }

    /// The layer of each line of each location, leaf first, like `locations`.
    public func layers(of locations: [Location], inSyscall: Bool) -> [[Layer]] {
        var layers = locations.map { location in
            location.lines.map { line in
                location.isKernel ? .kernel : rules.layer(module: location.module, function: line.function) ?? .app
            }
        }
        guard inSyscall, let leaf = locations.firstIndex(where: { !$0.isKernel }) else { return layers }
        layers[leaf] = layers[leaf].map { _ in .syscall }
        var index = leaf + 1
        while index < locations.count, !layers[index].contains(.app),
              locations[index].lines.contains(where: { SyscallWrappers.isWrapper($0.function) }) {
            layers[index] = layers[index].map { _ in .syscall }
            index += 1
        }
        return layers
    }

    public func layers(of record: Record) -> [[Layer]] {
        layers(of: record.locations, inSyscall: record.state?.systemCall != nil)
    }
}
