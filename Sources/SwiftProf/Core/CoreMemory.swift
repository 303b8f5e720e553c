// A dead process's memory: what the core holds of each segment, and for file
// mappings the core left out (code, read-only data: the kernel dumps only the
// first page of an ELF mapping) the bytes of the file found for it, whose
// build-id matched the core's.
import Glibc

public final class CoreMemory: @unchecked Sendable {
    private let bytes: CoreBytes
    private let segments: [CoreSegment]
    /// Set once, before any read: the located files behind their mappings.
    private var overlays: [(start: UInt64, end: UInt64, file: MappedFile, fileOffset: UInt64)] = []
    let processID: Int32

    init(bytes: CoreBytes, segments: [CoreSegment], processID: Int32) {
        self.bytes = bytes
        self.segments = segments
        self.processID = processID
    }

    func addFile(_ file: MappedFile, start: UInt64, end: UInt64, fileOffset: UInt64) {
        overlays.append((start, end, file, fileOffset))
    }

    /// As process_vm_readv: the count of bytes read up to the first that is missing,
    /// or -EFAULT when the first is.
    func read(_ address: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var done = 0
        while done < buffer.count {
            let (at, overflow) = address.addingReportingOverflow(UInt64(done))
            guard !overflow else { break }
            let n = readPiece(at, into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]))
            guard n > 0 else { break }
            done += n
        }
        return done > 0 ? done : -Int(EFAULT)
    }

    /// What one segment (or one file) holds from `address` on.
    private func readPiece(_ address: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        if let segment = segment(containing: address) {
            let offset = address - segment.start
            if offset < segment.bytesInFile {
                let length = Int(min(UInt64(buffer.count), segment.bytesInFile - offset))
                bytes.copy(from: Int(segment.fileOffset + offset), into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<length]))
                return length
            }
        }
        for overlay in overlays where address >= overlay.start && address < overlay.end {
            let offset = overlay.fileOffset + (address - overlay.start)
            let length = Int(min(UInt64(buffer.count), overlay.end - address))
            guard offset < UInt64(overlay.file.count) else { return 0 }
            let available = min(length, overlay.file.count - Int(offset))
            return overlay.file.withBytes(at: Int(offset), count: available) { source in
                UnsafeMutableRawBufferPointer(rebasing: buffer[..<available]).copyMemory(from: source)
                return available
            } ?? 0
        }
        return 0
    }

    private func segment(containing address: UInt64) -> CoreSegment? {
        var low = 0, high = segments.count
        while low < high {
            let mid = (low + high) / 2
            if segments[mid].end <= address { low = mid + 1 } else { high = mid }
        }
        return low < segments.count && address >= segments[low].start && address < segments[low].end ? segments[low] : nil
    }
}
