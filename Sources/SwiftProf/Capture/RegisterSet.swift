// The general registers of one stopped thread, indexed the way DWARF (and
// libunwind's UNW_X86_64_*) number them on x86_64.

public struct RegisterSet: Equatable, Sendable {
    public static let count = 17
    public static let rbp = 6
    public static let rsp = 7
    public static let rip = 16
    /// r14: Swift's swiftasync register, an async function's context.
    static let swiftAsyncContext = 14

    /// rax rdx rcx rbx rsi rdi rbp rsp r8..r15 rip
    public var values: [UInt64]
    /// Which of `values` are real: all after a ptrace stop; only pc and sp when
    /// /proc gave them. An unknown register must fail the unwind, not read as 0.
    public var known = RegisterNumbers.all
    /// The system call number the thread entered (-1 outside one); with rax, tells
    /// whether the stop interrupted a blocking call.
    public var origRAX: UInt64

    public init(values: [UInt64], origRAX: UInt64 = UInt64.max) {
        precondition(values.count == RegisterSet.count)
        self.values = values
        self.origRAX = origRAX
    }

    public init(pc: UInt64, sp: UInt64, fp: UInt64) {
        var values = [UInt64](repeating: 0, count: RegisterSet.count)
        values[RegisterSet.rip] = pc
        values[RegisterSet.rsp] = sp
        values[RegisterSet.rbp] = fp
        self.values = values
        self.origRAX = UInt64.max
    }

    /// A frame an unwinder resumes from, with only pc, sp and rbp known.
    static func frame(pc: UInt64, sp: UInt64, fp: UInt64) -> RegisterSet {
        var registers = RegisterSet(pc: pc, sp: sp, fp: fp)
        registers.known = [RegisterSet.rip, RegisterSet.rsp, RegisterSet.rbp]
        return registers
    }

    /// The system call the stop interrupted: orig_rax holds its number and rax one of
    /// the kernel's restart codes (-ERESTARTSYS ... -ERESTART_RESTARTBLOCK) or -EINTR.
    public var interruptedSyscall: Int? {
        let number = Int64(bitPattern: origRAX), result = Int64(bitPattern: values[0])
        guard number >= 0, (-516 ... -512).contains(result) || result == -4 else { return nil }
        return Int(number)
    }

    public var pc: UInt64 { values[RegisterSet.rip] }
    public var sp: UInt64 { values[RegisterSet.rsp] }
    public var fp: UInt64 { values[RegisterSet.rbp] }

    public subscript(dwarf number: Int) -> UInt64? {
        values.indices.contains(number) && known.contains(number) ? values[number] : nil
    }
}

/// A set of DWARF register numbers, as bits: every kernel sample makes a
/// RegisterSet, and a Set<Int> of 17 allocated a table each time.
public struct RegisterNumbers: Equatable, Sendable, Sequence, ExpressibleByArrayLiteral {
    private var bits: UInt32

    public static let all = RegisterNumbers(bits: (1 << RegisterSet.count) - 1)

    private init(bits: UInt32) { self.bits = bits }

    public init(arrayLiteral numbers: Int...) {
        bits = 0
        for number in numbers { insert(number) }
    }

    public func contains(_ number: Int) -> Bool { (0..<32).contains(number) && bits & (1 << number) != 0 }

    public mutating func insert(_ number: Int) {
        precondition((0..<RegisterSet.count).contains(number), "no register \(number)")
        bits |= 1 << number
    }

    public func makeIterator() -> some IteratorProtocol<Int> {
        (0..<RegisterSet.count).lazy.filter { self.contains($0) }.makeIterator()
    }
}
