// What reading a Swift process's tasks needs, found once: the target's symbols,
// the AsyncTask metadata its concurrency runtime exports for debuggers, and the
// runtime's reflection library set up on it. Refuses, with the reason, a process
// without the runtime or with a task layout the library here does not read.

struct TaskRuntime {
    static let concurrencyLibrary = "/libswift_Concurrency.so"
    static let metadataSymbol = "_swift_concurrency_debug_asyncTaskMetadata"

    let symbolizer: Symbolizer
    /// The target's objects, for the stacks of the threads running tasks.
    let image: TargetImage
    /// The AsyncTask metadata: the first word of every task object.
    let metadata: UInt64
    let mirror: RemoteMirror
    /// The runtime's task id counter (TaskCounter), when its symbol is there.
    let nextIDAddress: UInt64?

    init(memoryMap: MemoryMap, image: TargetImage, options: SymbolizeOptions) throws(TargetError) {
        let memory = image.memory, pid = memory.processID
        guard let symbolizer = Symbolizer(pid: pid, modules: image.symbolModules(), vdso: image.vdsoForSymbolizer, options: options) else {
            throw .noTasks(pid: pid, reason: "its modules cannot be read")
        }
        // The runtime's variables for debuggers: what the reflection library asks for
        // (found in one pass, before any stop).
        let debugVariables = symbolizer.addresses(ofSymbolsWithPrefixes: ["_swift_concurrency_debug_", TaskCounter.nextIDSymbol])
        guard let variable = debugVariables[Self.metadataSymbol] else {
            throw .noTasks(pid: pid, reason: "it has no Swift concurrency runtime (libswift_Concurrency.so)")
        }
        guard let word = Ptrace.readMemory(memory, at: variable, count: 8), case let metadata = littleEndianWord(word, at: 0),
              metadata != 0 else {
            throw .noTasks(pid: pid, reason: "its concurrency runtime's task metadata cannot be read")
        }
        // The library reads the layout of its own runtime's version: a target whose
        // runtime says another layout is refused rather than misread.
        let layout = debugVariables["_swift_concurrency_debug_internal_layout_version"]
            .flatMap { Ptrace.readMemory(memory, at: $0, count: 4) }
            .map { bytes in UInt32(truncatingIfNeeded: littleEndianWord(bytes + [0, 0, 0, 0], at: 0)) }
        guard let layout, layout == RemoteMirror.layoutVersion else {
            let own = RemoteMirror.layoutVersion.map(String.init) ?? "unknown"
            throw .noTasks(pid: pid, reason: "its concurrency runtime's task layout version is \(layout.map(String.init) ?? "not said"), "
                           + "and the reflection library here reads version \(own)")
        }
        var symbols: [String: UInt64?] = debugVariables.mapValues { $0 }
        mirror = try RemoteMirror(memory: memory) { name in
            if let known = symbols[name] { return known }
            let address = symbolizer.address(ofSymbol: name)
            symbols[name] = address
            return address
        }
        self.symbolizer = symbolizer
        self.image = image
        self.metadata = metadata
        nextIDAddress = debugVariables[TaskCounter.nextIDSymbol]
    }
}
