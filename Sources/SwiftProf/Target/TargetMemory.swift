// Where a target's memory is read from: a live process (process_vm_readv, no
// stop needed) or the segments of a core file. Everything that reads the
// target's memory (stack copies, goroutines, writable words of its objects)
// goes through this, so a core is read exactly as a live process is.
import CSwiftProf

public enum TargetMemory: Sendable {
    case process(Int32)
    case core(CoreMemory)
    /// Either of them, read through pages kept for one look at a stopped thread.
    case pages(MemoryPages)

    /// Reads into `buffer` from `address`: the count of bytes read (short at the first
    /// byte that cannot be read), or a negative errno when none could be.
    func read(_ address: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard buffer.count > 0 else { return 0 }
        switch self {
        case .process(let pid): return sp_read_memory(pid, address, buffer.baseAddress, buffer.count)
        case .core(let core): return core.read(address, into: buffer)
        case .pages(let pages): return pages.read(address, into: buffer)
        }
    }

    /// This memory read through pages kept until the result is dropped.
    var keepingPages: TargetMemory {
        if case .pages = self { return self }
        return .pages(MemoryPages(self))
    }

    /// Reads many ranges one after the other into `buffer`; `complete[i]` is set to 1
    /// for each range read whole (the others' bytes are left as they are).
    func read(ranges addresses: [UInt64], lengths: [Int], into buffer: UnsafeMutableRawBufferPointer,
              complete: inout [UInt8]) {
        switch self {
        case .process(let pid):
            _ = sp_read_ranges(pid, addresses, lengths, addresses.count, buffer.baseAddress, &complete)
        case .core, .pages:
            var at = 0
            for index in addresses.indices {
                let slice = UnsafeMutableRawBufferPointer(rebasing: buffer[at..<at + lengths[index]])
                complete[index] = read(addresses[index], into: slice) == lengths[index] ? 1 : 0
                at += lengths[index]
            }
        }
    }

    /// A live process's memory (not a core's, which keeps no instant on the clocks nor
    /// files reachable through /proc).
    var isLive: Bool {
        switch self {
        case .process: return true
        case .core: return false
        case .pages(let pages): return pages.underlying.isLive
        }
    }

    /// The process id for messages: the live one, or the dead one a core was taken of.
    var processID: Int32 {
        switch self {
        case .process(let pid): return pid
        case .core(let core): return core.processID
        case .pages(let pages): return pages.underlying.processID
        }
    }
}

// A target's memory read a page at a time and kept for one short look: the async
// contexts of a stopped thread's task lie together in its allocator's slab, so a
// chain of parents, the task object before them and its status records are a page
// or two, where one read for each word cost a system call apiece. Only for memory
// that cannot change while it is kept (a thread stopped, a core).
public final class MemoryPages: @unchecked Sendable {
    let underlying: TargetMemory
    private var pages: [UInt64: [UInt8]?] = [:]
    private static let size: UInt64 = 4096

    init(_ underlying: TargetMemory) {
        self.underlying = underlying
    }

    /// As TargetMemory.read: the count of bytes read, short at the first page that cannot be.
    func read(_ address: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var done = 0
        while done < buffer.count {
            let at = address &+ UInt64(done)
            let base = at & ~(Self.size - 1)
            guard let page = page(at: base) else { break }
            let offset = Int(at - base)
            let count = min(page.count - offset, buffer.count - done)
            page.withUnsafeBytes { source in
                UnsafeMutableRawBufferPointer(rebasing: buffer[done..<done + count])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: source[offset..<offset + count]))
            }
            done += count
        }
        return done == 0 && buffer.count > 0 ? -14 : done
    }

    private func page(at base: UInt64) -> [UInt8]? {
        if let kept = pages[base] { return kept }
        var bytes = [UInt8](repeating: 0, count: Int(Self.size))
        let n = bytes.withUnsafeMutableBytes { underlying.read(base, into: $0) }
        let page: [UInt8]? = n == bytes.count ? bytes : nil
        pages[base] = page
        return page
    }
}
