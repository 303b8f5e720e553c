// Opening debug information (and, the first time, inflating its compressed
// sections: see DecompressedDebugFile) does not depend on the capture, so it
// starts on another thread as soon as the process is known: the objects
// opened, and the pcs where the threads are blocked (which /proc gives, and
// which are exactly the leaf frames to come) looked up, while the capture and
// the unwinding run.

final class SymbolizerWarmUp {
    private let job: BackgroundJob<(MemoryMap, Symbolizer)?>

    init(pid: Int32, options: SymbolizeOptions) {
        job = BackgroundJob {
            guard let memoryMap = try? MemoryMap.read(pid: pid) else { return nil }
            let image = TargetImage(pid: pid, memoryMap: memoryMap)
            let vdso = memoryMap.regions.first { $0.path == "[vdso]" }
            guard let symbolizer = Symbolizer(pid: pid, modules: image.symbolModules(), vdso: vdso, options: options)
            else { return nil }
            var seen: Set<UInt64> = []
            for tid in threadIDs(of: pid) {
                guard let line = try? ProcFile.read("/proc/\(pid)/task/\(tid)/syscall"),
                      let pc = ThreadProcInfo.parseBlockedAt(line)?.pc, seen.insert(pc).inserted,
                      image.goCode(containing: pc) == nil else { continue }
                _ = symbolizer.location(pc: pc, isReturnAddress: false)
            }
            return (memoryMap, symbolizer)
        }
    }

    /// The warmed-up symbolizer, if its objects are the ones the capture saw.
    func symbolizer(for memoryMap: MemoryMap) -> Symbolizer? {
        guard let (warmed, symbolizer) = job.value, warmed.regions == memoryMap.regions else { return nil }
        return symbolizer
    }
}
