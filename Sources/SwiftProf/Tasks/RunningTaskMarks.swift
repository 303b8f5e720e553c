// The thread view of a Swift program says which async task each pool thread runs:
// a thread with the executor's frame (swift_job_run) is running a job, and the
// task among its stack's words (TaskThreads) is the one it runs.

extension Profiler {
    /// Sets `swiftTasks` in the state of each thread of `snapshot` that runs a Swift
    /// task. Only threads in swift_job_run are looked at (copied again, blocked ones
    /// without a stop); a process without the concurrency runtime is left as it is.
    public static func markRunningTasks(_ snapshot: inout Snapshot, options: SnapshotOptions) {
        let runners = snapshot.threads.filter { thread in
            thread.state != nil && thread.locations.contains { $0.lines.contains { $0.function == "swift_job_run" } }
        }.map(\.tid)
        guard !runners.isEmpty, let memoryMap = try? MemoryMap.read(pid: snapshot.pid),
              let runtime = try? TaskRuntime(memoryMap: memoryMap,
                                             image: TargetImage(pid: snapshot.pid, memoryMap: memoryMap), options: options.symbolize),
              let captures = try? TaskThreads.capture(pid: snapshot.pid, tids: runners, options: options.capture)
        else { return }
        let pid = snapshot.pid
        var ids: [UInt64: UInt64] = [:]
        let found = TaskThreads.threads(in: captures) { address in
            // A task is a heap object: its first word is the task metadata, and the
            // reflection library reads it as a task that is running.
            guard let region = memoryMap.region(containing: address), region.isWritable,
                  region.path.isEmpty || region.path == "[heap]",
                  let first = Ptrace.readMemory(pid: pid, at: address, count: 8), littleEndianWord(first, at: 0) == runtime.metadata,
                  let task = runtime.mirror.task(at: address), task.isRunning == true else { return false }
            ids[address] = task.id
            return true
        }
        for (address, tid) in found {
            guard let index = snapshot.threads.firstIndex(where: { $0.tid == tid }), let id = ids[address] else { continue }
            let marked = Set((snapshot.threads[index].state?.swiftTasks ?? []) + [id])
            snapshot.threads[index].state?.swiftTasks = marked.sorted()
        }
    }
}
