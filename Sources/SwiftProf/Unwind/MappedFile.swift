// A read-only local mmap of a file the target has mapped: unwind tables and
// code never change, so reads outside the copied stack are served from here
// instead of from the target (no syscall per word).
import Glibc

/// Bytes addressed by offset; the unwinder and the ELF reader see nothing else.
protocol ByteSource: Sendable {
    var count: Int { get }
    func load<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T?
    /// A little-endian 64-bit word: what the unwinder reads, thousands of times a
    /// walk, so not through the generic `load` (unspecialized across the existential:
    /// each call instantiated T's metadata, a third of `dump --goroutines`' time).
    func word(at offset: Int) -> UInt64?
    /// The same for the 8- and 32-bit fields of Go's function table.
    func byte(at offset: Int) -> UInt8?
    func uint32(at offset: Int) -> UInt32?
}

extension ByteSource {
    func int32(at offset: Int) -> Int32? { uint32(at: offset).map { Int32(bitPattern: $0) } }
}

extension ByteSource {
    func bytes(at offset: Int, count length: Int) -> [UInt8]? {
        guard offset >= 0, length >= 0, offset <= count - length else { return nil }
        return (0..<length).compactMap { load(UInt8.self, at: offset + $0) }
    }
}

final class MappedFile: ByteSource, @unchecked Sendable {
    private let base: UnsafeRawPointer?
    let count: Int
    /// Kept open: the symbolizer reads the same file through it even after the
    /// target has exited and /proc/PID/root is gone, or the file was deleted.
    private let descriptor: Int32

    /// Maps `path` whole; nil when it cannot be opened or is empty.
    init?(path: String) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_size > 0, (info.st_mode & S_IFMT) == S_IFREG,
              let address = mmap(nil, Int(info.st_size), PROT_READ, MAP_PRIVATE, fd, 0), address != MAP_FAILED else {
            close(fd)
            return nil
        }
        base = UnsafeRawPointer(address)
        count = Int(info.st_size)
        descriptor = fd
    }

    /// A new descriptor for the file, for a reader that closes what it is given.
    func duplicateDescriptor() -> Int32 { dup(descriptor) }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), count) }
        close(descriptor)
    }

    func load<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T? {
        guard let base, offset >= 0, offset <= count - MemoryLayout<T>.size else { return nil }
        return T(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    func word(at offset: Int) -> UInt64? {
        guard let base, offset >= 0, offset <= count - 8 else { return nil }
        return UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    func byte(at offset: Int) -> UInt8? {
        guard let base, offset >= 0, offset < count else { return nil }
        return base.load(fromByteOffset: offset, as: UInt8.self)
    }

    func uint32(at offset: Int) -> UInt32? {
        guard let base, offset >= 0, offset <= count - 4 else { return nil }
        return UInt32(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    /// `length` bytes from `offset`, in place; nil when the file does not hold them.
    func withBytes<R>(at offset: Int, count length: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R? {
        guard let base, offset >= 0, length >= 0, offset <= count - length else { return nil }
        return body(UnsafeRawBufferPointer(start: base + offset, count: length))
    }
}

/// Bytes copied out of the target (the vDSO has no file behind it).
struct CopiedBytes: ByteSource {
    let storage: [UInt8]
    var count: Int { storage.count }

    func load<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T? {
        guard offset >= 0, offset <= count - MemoryLayout<T>.size else { return nil }
        var value: T = 0
        for index in (0..<MemoryLayout<T>.size).reversed() { value = value << 8 | T(storage[offset + index]) }
        return value
    }

    func word(at offset: Int) -> UInt64? { load(UInt64.self, at: offset) }
    func byte(at offset: Int) -> UInt8? { load(UInt8.self, at: offset) }
    func uint32(at offset: Int) -> UInt32? { load(UInt32.self, at: offset) }
}
