// A thread's state as shown: /proc's view (read just before the stop), checked
// against the registers taken at the stop. If the thread left its system call
// in between, /proc's system call and kernel stack are stale and dropped.

enum ThreadStates {
    static let restartSyscall = 219

    static func state(of thread: CapturedThread, now: UInt64) -> (state: ThreadState, kernel: [KernelFrame])? {
        guard let proc = thread.procInfo else { return nil }
        var state = ThreadState(code: proc.state, wchan: proc.wchan)
        var kernel = proc.kernelStack ?? []
        if let call = proc.syscall {
            // A copy taken without a stop was checked against /proc already; a stopped
            // thread must show in its registers the call /proc saw.
            guard !thread.stoppedForCapture || thread.registers.interruptedSyscall == call.number else {
                // It returned from the call before we stopped it: it was running.
                return (ThreadState(code: "R"), [])
            }
            state.systemCall = systemCall(call.number, arguments: call.arguments)
        } else if proc.state != "D" {
            kernel = []  // a running thread's kernel stack is a moving target
        }
        if let lastRan = proc.lastRanNanoseconds, proc.state == "S" || proc.state == "D", now > lastRan {
            state.blockedNanoseconds = now - lastRan
        }
        return (state, kernel)
    }

    /// System call `number` by name, with as many of `arguments` as it takes, formatted.
    static func systemCall(_ number: Int, arguments: [UInt64]) -> SystemCall {
        let name = SyscallTable.name(number)
        return SystemCall(name: name, arguments: arguments.prefix(SyscallTable.argumentCount(name)).map(formatArgument))
    }

    /// Small values and small negative ones (an int -1 timeout) in decimal, the rest in hex.
    static func formatArgument(_ value: UInt64) -> String {
        if value < 0x10000 { return String(value) }
        if value <= 0xffff_ffff, Int32(truncatingIfNeeded: value) > -0x10000, Int32(truncatingIfNeeded: value) < 0 {
            return String(Int32(truncatingIfNeeded: value))
        }
        let signed = Int64(bitPattern: value)
        if signed < 0, signed > -0x10000 { return String(signed) }
        return hex(value)
    }

    /// A call restarted after an earlier ptrace stop shows as restart_syscall; the
    /// wrapper at the leaf of the user stack still names the call it makes.
    static func namingRestartedCall(_ state: ThreadState, userLocations: [Location]) -> ThreadState {
        guard state.systemCall?.name == SyscallTable.name(restartSyscall),
              let name = userLocations.lazy.flatMap(\.lines).compactMap({ SyscallWrappers.syscallName(ofWrapper: $0.function) }).first
        else { return state }
        var renamed = state
        renamed.systemCall = SystemCall(name: name, arguments: ["…"])
        return renamed
    }

    /// Kernel frames as locations: return addresses from kallsyms, minus one like user
    /// call sites; address 0 when the kernel hides its addresses.
    static func locations(_ frames: [KernelFrame], kallsyms: Kallsyms?) -> [Location] {
        frames.map { frame in
            let callSite = frame.offset > 0 ? frame.offset - 1 : 0
            let address = kallsyms?.address(of: frame.function).map { $0 + callSite } ?? 0
            // Relative addresses count from the kernel's (or its module's) start, which KASLR moves.
            let bias = address == 0 ? 0 : kallsyms?.base(of: frame.function) ?? 0
            return Location(address: address, moduleBias: bias, module: Location.kernelModule,
                            lines: [FrameLine(function: frame.function, offset: callSite, file: "", line: 0)])
        }
    }
}
