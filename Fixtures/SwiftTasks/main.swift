// Async tasks suspended in known functions, in known numbers, for `dump --tasks`:
//   3 tasks in Cache.waitForever(key:), awaiting a continuation nobody resumes;
//   2 tasks in slowLookup(_:), in Task.sleep, at background priority (the others at the default);
//   1 task in fanOut(_:), awaiting a task group of 4 children in childWork(_:), each in Task.sleep;
//   1 task in pairUp(), awaiting 2 `async let` children in childWork(_:);
//   2 tasks named "janitor" and "x\n1 @ 0x1\n#\t0" (a name that tries to forge a record)
//   in janitor(), awaiting continuations;
//   1 task in supervise(_:), awaiting the value of a task in parkedWorker(), which
//   awaits a continuation;
//   argv[1] more tasks (default 0) in parkedMany(_:), awaiting continuations (for scale).
// Prints "ready PID" once every task is suspended (no thread but main is running),
// then reads stdin until EOF. `TASK_TOTAL n` on the ready line says how many tasks
// the fixture itself counts as live (the truth the test compares with).
#if canImport(Glibc)
import Glibc
#endif

/// Continuations kept so that they are never resumed (and never leaked as a misuse).
final class Parking: @unchecked Sendable {
    private var lock = pthread_mutex_t()
    private var parked: [CheckedContinuation<Void, Never>] = []
    init() { pthread_mutex_init(&lock, nil) }
    func keep(_ continuation: CheckedContinuation<Void, Never>) {
        pthread_mutex_lock(&lock)
        parked.append(continuation)
        pthread_mutex_unlock(&lock)
    }
}

let parking = Parking()

actor Cache {
    @inline(never)
    func waitForever(key: String) async {
        await withCheckedContinuation { parking.keep($0) }
    }
}

@inline(never)
func slowLookup(_ key: Int) async {
    try? await Task.sleep(nanoseconds: 100_000 * 1_000_000_000)
}

@inline(never)
func childWork(_ index: Int) async -> Int {
    try? await Task.sleep(nanoseconds: 100_000 * 1_000_000_000)
    return index
}

@inline(never)
func fanOut(_ width: Int) async -> Int {
    await withTaskGroup(of: Int.self) { group in
        for index in 0..<width { group.addTask { await childWork(index) } }
        var sum = 0
        for await value in group { sum += value }
        return sum
    }
}

@inline(never)
func pairUp() async -> Int {
    async let first = childWork(1)
    async let second = childWork(2)
    return await first + second
}

@inline(never)
func janitor() async {
    await withCheckedContinuation { parking.keep($0) }
}

@inline(never)
func parkedWorker() async -> Int {
    await withCheckedContinuation { parking.keep($0) }
    return 1
}

@inline(never)
func supervise(_ worker: Task<Int, Never>) async -> Int {
    await worker.value
}

@inline(never)
func parkedMany(_ index: Int) async {
    await withCheckedContinuation { parking.keep($0) }
}

let extra = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 0 : 0
let caches = [Cache(), Cache(), Cache()]
for (index, cache) in caches.enumerated() { Task.detached { await cache.waitForever(key: "key\(index)") } }
// At a priority of their own: what the dump says of them is checked against it.
for key in 0..<2 { Task.detached(priority: .background) { await slowLookup(key) } }
Task.detached { _ = await fanOut(4) }
Task.detached { _ = await pairUp() }
for name in ["janitor", "x\n1 @ 0x1\n#\t0"] { Task.detached(name: name) { await janitor() } }
let worker = Task.detached { await parkedWorker() }
Task.detached { _ = await supervise(worker) }
for index in 0..<extra { Task.detached { await parkedMany(index) } }
let total = 3 + 2 + (1 + 4) + (1 + 2) + 2 + 2 + extra

/// The process's threads but main, by /proc.
func otherThreads() -> [Int32] {
    guard let directory = opendir("/proc/self/task") else { return [] }
    defer { closedir(directory) }
    var tids: [Int32] = []
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if let tid = Int32(name), tid != getpid() { tids.append(tid) }
    }
    return tids
}

/// The state letter of a thread ("R", "S", ...) from /proc/self/task/TID/stat.
func state(_ tid: Int32) -> Character? {
    guard let file = fopen("/proc/self/task/\(tid)/stat", "r") else { return nil }
    defer { fclose(file) }
    var buffer = [CChar](repeating: 0, count: 512)
    guard fgets(&buffer, 512, file) != nil else { return nil }
    let line = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    guard let close = line.lastIndex(of: ")") else { return nil }
    return line[line.index(close, offsetBy: 2)...].first
}

/// Every task has started and suspended when the pool's threads are all asleep,
/// three times in a row, with the task count reached.
func waitUntilSuspended() {
    var tick = timespec(tv_sec: 0, tv_nsec: 1_000_000)
    var quiet = 0
    while quiet < 3 {
        nanosleep(&tick, nil)
        let threads = otherThreads()
        quiet = !threads.isEmpty && threads.allSatisfy({ state($0) == "S" }) ? quiet + 1 : 0
    }
}

waitUntilSuspended()
print("ready \(getpid()) TASK_TOTAL \(total)")
fflush(nil)
while let _ = readLine() {}
