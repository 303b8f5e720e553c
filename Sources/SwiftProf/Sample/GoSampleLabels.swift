// A sample of a Go program carries the profiler labels of the goroutine its thread
// ran, as Go's own CPU profile labels each sample (runtime/pprof.Do). The kernel's
// sample of a thread on a CPU has its registers: Go code keeps the running g in R14,
// taken when the sample's stack pointer lies in that g's stack (read a tick later,
// the thread may run another goroutine by then, or none). A thread captured at the
// tick runs what the runtime's list of Ms says it runs now (m.curg). Label sets are
// decoded again at each tick: a freed label map's address may hold another later.

final class GoSampleLabels {
    private let reader: GoroutineReader

    /// nil when `image` runs no Go code or its DWARF does not say where Ms are.
    init?(image: TargetImage) {
        guard case .success(let reader) = Profiler.goroutineReader(image: image, stackLimit: 0),
              reader.layout.allm != nil, reader.layout.mCurG != nil, reader.layout.labels != nil else { return nil }
        self.reader = reader
    }

    /// Labels each sample captured at the tick with its thread's goroutine's labels
    /// (none for a thread running none).
    func label(_ tick: inout Sampler.Tick) {
        guard !tick.samples.isEmpty else { return }
        let running = reader.currentGoroutines()
        guard !running.isEmpty else { return }
        var known: [UInt64: [String: String]] = [:]
        for index in tick.samples.indices {
            guard let g = running[tick.samples[index].tid] else { continue }
            tick.samples[index].goLabels = reader.labels(ofGoroutineAt: g, known: &known)
        }
    }

    /// The labels of the goroutine a kernel's sample caught running Go code (none when
    /// R14 holds no g whose stack holds the sample's stack pointer: C code, the runtime's
    /// own stack).
    func labels(_ registers: RegisterSet) -> [String: String] {
        var known: [UInt64: [String: String]] = [:]
        return reader.labels(ofGoroutineAt: registers.values[14], runningOn: registers.sp, known: &known) ?? [:]
    }
}
