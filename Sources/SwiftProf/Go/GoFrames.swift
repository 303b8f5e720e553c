// Names, file:line and inlined frames of Go code, from Go's table, in the two
// shapes swiftprof prints them: one location per physical frame with its
// inlined callers (thread stacks, like eu-stack -i), or one pc per logical
// frame the way Go's runtime records them (goroutine profiles, so that the
// "@" line is the one Go prints).

extension GoModule {
    /// The frames at runtime address `address` (a call instruction or the leaf pc),
    /// innermost first.
    func frameLines(at address: UInt64) -> [FrameLine]? {
        let link = address &- bias
        guard let function = table.function(at: link) else { return nil }
        let offset = link - function.entry
        var lines: [FrameLine] = []
        var pc = link
        while let call = table.inlinedCall(function, at: pc) {
            if call.functionID != table.wrapperFunctionID {
                let (file, line) = table.fileLine(function, at: pc)
                lines.append(FrameLine(function: call.name, offset: offset, file: file, line: line))
            }
            pc = function.entry + call.parentPC
        }
        let (file, line) = table.fileLine(function, at: pc)
        lines.append(FrameLine(function: table.name(of: function), offset: offset, file: file, line: line))
        return lines
    }

    /// Without inlined frames (--no-inline): the physical function, at the line of the
    /// code actually at the address (the innermost inlined body's), as for C.
    static func physicalLine(_ lines: [FrameLine]) -> FrameLine {
        guard var outer = lines.last, let inner = lines.first else { return FrameLine(function: "", offset: 0, file: "", line: 0) }
        outer.file = inner.file
        outer.line = inner.line
        return outer
    }

    /// One frame a physical pc (--no-inline), its function's, with the compiler's
    /// wrappers left out as `runtimePCs` leaves them out. A return address (and a
    /// leaf recorded as pc + 1) is looked up at pc - 1.
    func physicalFrames(_ pcs: [UInt64]) -> [Location] {
        pcs.compactMap { pc in
            if let function = table.function(at: pc &- bias &- 1), table.functionID(of: function) == table.wrapperFunctionID {
                return nil
            }
            return Location(address: pc - 1, moduleBias: bias, module: path, lines: [GoModule.physicalLine(frameLines(at: pc - 1) ?? [])])
        }
    }

    /// Go's own pc list for physical return addresses (gentraceback): each inlined
    /// level gets a pc of its own (its call site in the caller, plus one), and
    /// compiler-generated wrappers are left out (Go keeps them only under a panic,
    /// which a parked goroutine is not in).
    func runtimePCs(_ returnAddresses: [UInt64]) -> [UInt64] {
        var pcs: [UInt64] = []
        let wrapper = table.wrapperFunctionID
        func keeps(_ id: UInt8) -> Bool { id != wrapper }
        for address in returnAddresses {
            var pc = address &- bias
            guard let function = table.function(at: pc - 1) ?? table.function(at: pc) else {
                pcs.append(address)
                continue
            }
            var lookup = pc - 1
            if pc == function.entry {
                pc += 1
                lookup = pc - 1
            }
            while let call = table.inlinedCall(function, at: lookup) {
                if keeps(call.functionID) { pcs.append(pc &+ bias) }
                lookup = function.entry + call.parentPC
                pc = lookup + 1
            }
            if keeps(table.functionID(of: function)) { pcs.append(pc &+ bias) }
        }
        return pcs
    }

    /// The one logical frame Go's CallersFrames gives for a recorded pc.
    func runtimeFrame(pc: UInt64) -> Location {
        let link = pc &- bias - 1
        guard let function = table.function(at: link) else {
            return Location(address: pc - 1, moduleBias: bias, module: path,
                            lines: [FrameLine(function: "", offset: 0, file: "", line: 0)])
        }
        let name = table.inlinedCall(function, at: link)?.name ?? table.name(of: function)
        let (file, line) = table.fileLine(function, at: link)
        return Location(address: pc - 1, moduleBias: bias, module: path,
                        lines: [FrameLine(function: name, offset: link - function.entry, file: file, line: line)])
    }
}
