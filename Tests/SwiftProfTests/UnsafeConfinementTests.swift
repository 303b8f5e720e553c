// Unsafe pointer work stays in the files that talk to C (the shim, libdw,
// libunwind, the kernel's system calls); everything above them is safe Swift.
// A file not listed here that takes an unsafe pointer fails this test: move the
// C call into one of these, or add the file with the C interface it wraps.
import Foundation
import Testing

@Suite struct UnsafeConfinementTests {
    /// Each file with the C interface that needs it.
    static let talksToC: [String: String] = [
        "SwiftProf/Capture/KernelSamples.swift": "perf_event rings (shim)",
        "SwiftProf/Capture/Ptrace.swift": "ptrace, process_vm_readv (shim)",
        "SwiftProf/Capture/ThreadSwitches.swift": "perf_event rings (shim)",
        "SwiftProf/Capture/TracerThread.swift": "pthread_create",
        "SwiftProf/Core/CoreBytes.swift": "mmap(2); libelf, libzstd, liblzma, liblz4 (shim)",
        "SwiftProf/Core/CoreMemory.swift": "a core's bytes copied out, as process_vm_readv copies a process's",
        "SwiftProf/Formats/PprofProto.swift": "zlib (shim)",
        "SwiftProf/Symbolize/Demangler.swift": "the demanglers (shim)",
        "SwiftProf/Symbolize/FunctionScopeSearch.swift": "libdw",
        "SwiftProf/Symbolize/Symbolizer.swift": "libdwfl",
        "SwiftProf/Target/CacheDirectory.swift": "write(2)",
        "SwiftProf/Target/KallsymsCache.swift": "mmap(2)",
        "SwiftProf/Target/ProcFile.swift": "open(2), read(2), getdents",
        "SwiftProf/Target/TargetMemory.swift": "process_vm_readv (shim), or a core's bytes",
        "SwiftProf/Target/ThreadProcInfo.swift": "pread(2)",
        "SwiftProf/Tasks/RemoteMirror.swift": "libswiftRemoteMirror (shim)",
        "SwiftProf/Unwind/ElfHeaders.swift": "libelf (shim)",
        "SwiftProf/Unwind/LibunwindUnwinder.swift": "libunwind",
        "SwiftProf/Unwind/MappedFile.swift": "mmap(2)",
        "SwiftProf/Unwind/TargetImage.swift": "process_vm_readv (shim)",
        "swiftprof/ExitStatus.swift": "write(2)",
        "swiftprof/OutputOptions.swift": "mkstemp(3), read(2)",
        "swiftprof/TopCommand.swift": "pthread_create, termios",
    ]

    @Test func unsafePointersStayInTheFilesThatTalkToC() throws {
        let sources = Paths.packageRoot.appendingPathComponent("Sources")
        let files = try #require(FileManager.default.enumerator(atPath: sources.path)).compactMap { $0 as? String }
            .filter { $0.hasSuffix(".swift") }
        #expect(files.count > 50, "\(files.count) Swift files under Sources")
        let unsafe = try Regex("Unsafe[A-Z]|withUnsafe|Unmanaged|unsafeBitCast|unsafeAddress")
        var offenders: [String] = []
        for file in files.sorted() {
            let text = try String(contentsOf: sources.appendingPathComponent(file), encoding: .utf8)
            if text.contains(unsafe) && Self.talksToC[file] == nil { offenders.append(file) }
        }
        #expect(offenders.isEmpty, "unsafe pointer code outside the files that talk to C: \(offenders)")
        // The list stays true: every file on it still does.
        for file in Self.talksToC.keys.sorted() {
            let text = try String(contentsOf: sources.appendingPathComponent(file), encoding: .utf8)
            #expect(text.contains(unsafe), "\(file) has no unsafe code left: take it off the list")
        }
    }
}
