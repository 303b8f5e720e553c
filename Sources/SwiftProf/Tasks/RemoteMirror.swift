// The Swift runtime's own reflection library (libswiftRemoteMirror.so, what LLDB
// and swift-inspect use) reads a task object of the target: its id, flags, child
// tasks and async backtrace, by the layout of the runtime that wrote it, instead
// of a hand decoding of that private layout. It ships with the toolchain, next to
// the libswiftCore.so this program runs with, and is loaded from there at run time.
import CSwiftProf
import Glibc

/// What the runtime's reflection library says of one task object.
struct TaskInfo: Sendable, Hashable {
    var address: UInt64
    var id: UInt64
    var isChild: Bool
    var isGroupChild: Bool
    var isAsyncLet: Bool
    var isCancelled: Bool
    /// nil where the runtime does not keep the flag.
    var isRunning: Bool?
    var isEnqueued: Bool
    var children: [UInt64]
    /// The resume functions of its async frames, innermost first.
    var asyncFrames: [UInt64]
    /// Where the task goes on when next run: its job's entry (a partial function).
    var runJob: UInt64
    /// The context it resumes with (TaskHeader's, read apart).
    var resumeContext: UInt64 = 0
    var enqueuePriority: UInt32
    var maxPriority: UInt32
    /// Its name and dependency, read apart (TaskRecords): the library does not return them.
    var records = TaskRecords()
    var name: String? { records.name }
}

final class RemoteMirror {
    private let handle: UnsafeMutableRawPointer
    private let lookup: SymbolLookup
    /// The core the library reads, kept alive while it may.
    private var core: CoreMemory?

    /// Resolves the target's symbols for the library (it asks for the runtime's
    /// debug variables by name).
    final class SymbolLookup {
        let resolve: (String) -> UInt64?
        init(_ resolve: @escaping (String) -> UInt64?) { self.resolve = resolve }
    }

    /// Throws, with the reason, when the library cannot be found or loaded.
    init(memory: TargetMemory, symbols: @escaping (String) -> UInt64?) throws(TargetError) {
        let pid = memory.processID
        guard let path = Self.libraryPath() else {
            throw .noTasks(pid: pid, reason: "libswiftRemoteMirror.so is not next to this program's libswiftCore.so")
        }
        lookup = SymbolLookup(symbols)
        var error: UnsafePointer<CChar>?
        let context = Unmanaged.passUnretained(lookup).toOpaque()
        // A live process is read by the shim itself (process_vm_readv); a core through its reader here.
        var reader: sp_memory_reader?
        if case .core(let core) = memory {
            self.core = core
            reader = { context, address, buffer, length in
                Unmanaged<CoreMemory>.fromOpaque(context!).takeUnretainedValue()
                    .read(address, into: UnsafeMutableRawBufferPointer(start: buffer, count: length))
            }
        }
        let readerContext = core.map { Unmanaged.passUnretained($0).toOpaque() }
        guard let handle = sp_mirror_open(path, pid, reader, readerContext, { context, name, length in
            guard let context, let name else { return 0 }
            let bytes = UnsafeRawBufferPointer(start: name, count: Int(length))
            let symbol = String(decoding: bytes, as: UTF8.self)
            return Unmanaged<SymbolLookup>.fromOpaque(context).takeUnretainedValue().resolve(symbol) ?? 0
        }, context, &error) else {
            throw .noTasks(pid: pid, reason: "\(path): \(error.map { String(cString: $0) } ?? "cannot be loaded")")
        }
        self.handle = handle
    }

    deinit { sp_mirror_close(handle) }

    /// The task at `address`, or nil when the library does not read a task there.
    func task(at address: UInt64) -> TaskInfo? {
        var raw = sp_task_info()
        sp_mirror_task_info(handle, address, &raw)
        guard raw.error == nil else { return nil }
        // The arrays live until the library's next call: copied now.
        let children = raw.child_tasks.map { Array(UnsafeBufferPointer(start: $0, count: Int(raw.child_task_count))) } ?? []
        let frames = raw.async_backtrace.map { Array(UnsafeBufferPointer(start: $0, count: Int(raw.async_backtrace_count))) } ?? []
        return TaskInfo(address: address, id: raw.id, isChild: raw.is_child_task,
                        isGroupChild: raw.is_group_child_task, isAsyncLet: raw.is_async_let_task, isCancelled: raw.is_cancelled,
                        isRunning: raw.has_is_running ? raw.is_running : nil, isEnqueued: raw.is_enqueued,
                        children: children, asyncFrames: frames, runJob: raw.run_job,
                        enqueuePriority: UInt32(raw.enqueue_priority), maxPriority: UInt32(raw.max_priority))
    }

    /// Where `value` is stored in the process's memory from `start` for `length`
    /// bytes, at 16-byte alignment (heap objects'), and how many bytes could be read.
    static func words(equalTo value: UInt64, memory: TargetMemory, start: UInt64, length: UInt64) -> (addresses: [UInt64], scanned: Int) {
        guard case .process(let pid) = memory else {
            // A core's memory is at hand: scanned here, a MiB at a time.
            var found: [UInt64] = []
            var scanned = 0
            let chunk: UInt64 = 1 << 20
            var words = [UInt64](repeating: 0, count: Int(chunk / 8))
            for offset in stride(from: UInt64(0), to: length, by: Int(chunk)) {
                let size = Int(min(chunk, length - offset))
                let read = words.withUnsafeMutableBytes { memory.read(start + offset, into: UnsafeMutableRawBufferPointer(rebasing: $0[..<size])) }
                guard read == size else { continue }
                scanned += size
                for index in stride(from: 0, to: size / 8, by: 2) where UInt64(littleEndian: words[index]) == value {
                    found.append(start + offset + UInt64(index * 8))
                }
            }
            return (found, scanned)
        }
        var count = 0
        var scanned: UInt64 = 0
        // One pass: the C side grows its own array of hits, handed over here.
        guard let found = sp_scan_words(pid, start, length, value, &count, &scanned) else { return ([], 0) }
        defer { free(found) }
        return (Array(UnsafeBufferPointer(start: found, count: count)), Int(scanned))
    }

    /// The task layout version of the runtime beside the library (the one this
    /// program runs with); nil when it does not say.
    static var layoutVersion: UInt32? {
        let version = sp_own_task_layout_version()
        return version >= 0 ? UInt32(truncatingIfNeeded: version) : nil
    }

    /// libswiftRemoteMirror.so in the directory of the libswiftCore.so mapped into
    /// this process (/proc/self/maps), as the toolchain installs them together.
    static func libraryPath() -> String? {
        guard let maps = try? ProcFile.read("/proc/self/maps") else { return nil }
        for line in maps.split(separator: "\n") {
            guard let slash = line.firstIndex(of: "/") else { continue }
            let path = String(line[slash...])
            guard path.hasSuffix("/libswiftCore.so") else { continue }
            let candidate = String(path.dropLast("libswiftCore.so".count)) + "libswiftRemoteMirror.so"
            return access(candidate, R_OK) == 0 ? candidate : nil
        }
        return nil
    }
}
