// Where a target's memory is read from: a live process (process_vm_readv, no
// stop needed) or the segments of a core file. Everything that reads the
// target's memory (stack copies, goroutines, writable words of its objects)
// goes through this, so a core is read exactly as a live process is.
import CSwiftProf

public enum TargetMemory: Sendable {
    case process(Int32)
    case core(CoreMemory)

    /// Reads into `buffer` from `address`: the count of bytes read (short at the first
    /// byte that cannot be read), or a negative errno when none could be.
    func read(_ address: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard buffer.count > 0 else { return 0 }
        switch self {
        case .process(let pid): return sp_read_memory(pid, address, buffer.baseAddress, buffer.count)
        case .core(let core): return core.read(address, into: buffer)
        }
    }

    /// Reads many ranges one after the other into `buffer`; `complete[i]` is set to 1
    /// for each range read whole (the others' bytes are left as they are).
    func read(ranges addresses: [UInt64], lengths: [Int], into buffer: UnsafeMutableRawBufferPointer,
              complete: inout [UInt8]) {
        switch self {
        case .process(let pid):
            _ = sp_read_ranges(pid, addresses, lengths, addresses.count, buffer.baseAddress, &complete)
        case .core(let core):
            var at = 0
            for index in addresses.indices {
                let slice = UnsafeMutableRawBufferPointer(rebasing: buffer[at..<at + lengths[index]])
                complete[index] = core.read(addresses[index], into: slice) == lengths[index] ? 1 : 0
                at += lengths[index]
            }
        }
    }

    /// A live process's memory (not a core's, which keeps no instant on the clocks nor
    /// files reachable through /proc).
    var isLive: Bool {
        if case .process = self { return true }
        return false
    }

    /// The process id for messages: the live one, or the dead one a core was taken of.
    var processID: Int32 {
        switch self {
        case .process(let pid): return pid
        case .core(let core): return core.processID
        }
    }
}
