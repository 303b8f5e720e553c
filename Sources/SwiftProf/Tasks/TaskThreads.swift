// Which thread runs a running task. The runtime records it nowhere on Linux (a task
// keeps its thread only where priority escalation is built in, on Darwin), but a
// thread running a task holds the task's address: the executor frames under the
// task's code (swift_job_run, runJobInEstablishedExecutorContext) keep the job they
// run, in a callee-saved register or a stack slot. So each thread's live stack
// (from its stack pointer up) and registers are searched for task addresses; a task
// found on exactly one thread runs there, one found on several is left unsaid.

enum TaskThreads {
    /// For each task address `isRunningTask` accepts, the one thread whose live stack
    /// or registers hold it.
    static func threads(in captures: [CapturedThread], isRunningTask: (UInt64) -> Bool) -> [UInt64: Int32] {
        var holders: [UInt64: Set<Int32>] = [:]
        var verdicts: [UInt64: Bool] = [:]
        for thread in captures {
            for word in Set(words(of: thread)) where word & 15 == 0 && word != 0 {
                let running: Bool
                if let known = verdicts[word] {
                    running = known
                } else {
                    running = isRunningTask(word)
                    verdicts[word] = running
                }
                if running { holders[word, default: []].insert(thread.tid) }
            }
        }
        return holders.compactMapValues { $0.count == 1 ? $0.first : nil }
    }

    /// The thread's known registers (but its pc and sp) and its stack's aligned words.
    private static func words(of thread: CapturedThread) -> [UInt64] {
        var words = thread.registers.known.filter { $0 != RegisterSet.rip && $0 != RegisterSet.rsp }
            .map { thread.registers.values[$0] }
        let stack = thread.stack
        var offset = Int((8 - stack.start % 8) % 8)
        while offset + 8 <= stack.bytes.count {
            words.append(littleEndianWord(stack.bytes, at: offset))
            offset += 8
        }
        return words
    }

    /// The threads `tids` (every thread when nil) as `dump` takes them: blocked ones
    /// copied without a stop (unless `withoutStop` is false), the others stopped one
    /// at a time, each only as long as its copy takes. Threads that vanish or cannot
    /// be copied are left out.
    static func capture(pid: Int32, tids: [Int32]? = nil, options: CaptureOptions,
                        withoutStop: Bool = true) throws(TargetError) -> [CapturedThread] {
        try TracerThread.run { () throws(TargetError) -> [CapturedThread] in
            let capturer = try ThreadCapturer(pid: pid, options: options)
            defer { capturer.releasePending() }
            var threads: [CapturedThread] = []
            for tid in tids ?? threadIDs(of: pid) {
                if withoutStop, let look = capturer.activity.look(tid), let copy = capturer.captureWithoutStop(tid: tid, name: "", look: look) {
                    threads.append(copy)
                } else if case .captured(let copy) = try capturer.captureStopped(tid: tid, name: "") {
                    threads.append(copy)
                }
            }
            return threads
        }
    }
}
