// Async programs whose truth the fixture knows, for the task reader and the
// samplers. The first argument picks one:
//   churn     4 tasks named "keeper" (priority high) parked in keep() on continuations
//             that are never resumed, and two tasks that keep making short-lived ones:
//             "groups" runs task groups of 8 children in shortWork(_:), "detached"
//             starts 8 detached tasks in blip(_:) a round and waits until all 8 ended.
//             Answers `created` with the number of tasks it has made (an upper bound of
//             every task id the runtime has given out, less the main task's).
//   requests  two tasks, "server 1" and "server 2", each serving a search then an index
//             request in a loop: handleSearch() and handleIndex() both await sharedLookup(_:kind:),
//             which suspends once (its callers are then on no thread's stack) and calls
//             the synchronous hot(_:), twice as long for a search. Answers `cpu` with
//             the CPU time each kind has spent in hot(_:) so far, by the thread's own
//             clock: "cpu SEARCH_NS INDEX_NS".
//   starve   the cooperative pool starved: "reloader" holds the actor Registry in
//             Registry.reload(_:), blocked in read(2) on a pipe nobody writes; 3 tasks
//             queued on Registry in lookup(_:); one "loader N" a pool thread more,
//             each blocked in read(2) in loadConfig(_:), until every pool thread is
//             (POOL n on the ready line: one a CPU); then 10 tasks in neverRun(_:),
//             made when no thread is left to run them.
// Prints "ready PID" once the mode is under way, then reads stdin until EOF.
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Every task the fixture starts, counted before it starts.
let created = Atomic<Int>(0)

@discardableResult
func counted<T>(_ count: Int = 1, _ body: () -> T) -> T {
    created.add(count, ordering: .sequentiallyConsistent)
    return body()
}

/// Continuations kept so that they are never resumed.
final class Parking: @unchecked Sendable {
    private var lock = pthread_mutex_t()
    private var parked: [CheckedContinuation<Void, Never>] = []
    private(set) var count = 0
    init() { pthread_mutex_init(&lock, nil) }
    func keep(_ continuation: CheckedContinuation<Void, Never>) {
        pthread_mutex_lock(&lock)
        parked.append(continuation)
        count += 1
        pthread_mutex_unlock(&lock)
    }
    var parkedCount: Int {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        return count
    }
}

let parking = Parking()

@inline(never)
func keep() async {
    await withCheckedContinuation { parking.keep($0) }
}

@inline(never)
func shortWork(_ index: Int) async -> Int {
    var sum = index
    for step in 0..<200 { sum &+= step &* index }
    return sum
}

@inline(never)
func blip(_ index: Int) async -> Int {
    index &* 3
}

/// Tasks of the current round of detached ones that have not ended yet.
let detachedLive = Atomic<Int>(0)

@inline(never)
func churnGroups() async {
    while true {
        let width = 8
        created.add(width, ordering: .sequentiallyConsistent)
        _ = await withTaskGroup(of: Int.self) { group in
            for index in 0..<width { group.addTask { await shortWork(index) } }
            var sum = 0
            for await value in group { sum &+= value }
            return sum
        }
    }
}

@inline(never)
func churnDetached() async {
    while true {
        detachedLive.store(8, ordering: .sequentiallyConsistent)
        for index in 0..<8 {
            counted {
                Task.detached {
                    _ = await blip(index)
                    detachedLive.subtract(1, ordering: .sequentiallyConsistent)
                }
            }
        }
        while detachedLive.load(ordering: .sequentiallyConsistent) > 0 { await Task.yield() }
    }
}

func churn() {
    for _ in 0..<4 { counted { Task.detached(name: "keeper", priority: .high) { await keep() } } }
    counted { Task.detached(name: "groups") { await churnGroups() } }
    counted { Task.detached(name: "detached") { await churnDetached() } }
    var tick = timespec(tv_sec: 0, tv_nsec: 1_000_000)
    while parking.parkedCount < 4 { nanosleep(&tick, nil) }
}

/// CPU time spent in hot(_:), per request kind, in nanoseconds.
let searchNanoseconds = Atomic<Int>(0)
let indexNanoseconds = Atomic<Int>(0)

func threadCPUNanoseconds() -> Int {
    var now = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
    return now.tv_sec * 1_000_000_000 + now.tv_nsec
}

@inline(never)
func hot(_ rounds: Int) -> Int {
    var value = 0
    for round in 0..<rounds { value = value &* 31 &+ round }
    return value
}

enum RequestKind { case search, index }

@inline(never)
func sharedLookup(_ rounds: Int, kind: RequestKind) async -> Int {
    await Task.yield()
    let start = threadCPUNanoseconds()
    let value = hot(rounds)
    let spent = threadCPUNanoseconds() - start
    switch kind {
    case .search: searchNanoseconds.add(spent, ordering: .sequentiallyConsistent)
    case .index: indexNanoseconds.add(spent, ordering: .sequentiallyConsistent)
    }
    return value
}

@inline(never)
func handleSearch() async -> Int { await sharedLookup(4_000_000, kind: .search) }

@inline(never)
func handleIndex() async -> Int { await sharedLookup(2_000_000, kind: .index) }

func requests() {
    for name in ["server 1", "server 2"] {
        Task.detached(name: name) {
            while true {
                _ = await handleSearch()
                _ = await handleIndex()
            }
        }
    }
    var tick = timespec(tv_sec: 0, tv_nsec: 1_000_000)
    while searchNanoseconds.load(ordering: .sequentiallyConsistent) == 0 || indexNanoseconds.load(ordering: .sequentiallyConsistent) == 0 {
        nanosleep(&tick, nil)
    }
}

/// Read in blocking calls that never return: nobody writes the pipe.
let neverWrittenFD: Int32 = {
    var ends: [Int32] = [0, 0]
    _ = pipe(&ends)
    return ends[0]
}()

actor Registry {
    var reloads = 0
    /// Blocks its thread, and so the actor, in read(2): the mistake this shows.
    @inline(never)
    func reload(_ path: String) {
        reloads += 1
        var byte: UInt8 = 0
        _ = read(neverWrittenFD, &byte, 1)
    }
    @inline(never)
    func lookup(_ key: Int) -> Int { key + reloads }
}

let registry = Registry()

@inline(never)
func loadConfig(_ path: String) async {
    var byte: UInt8 = 0
    _ = read(neverWrittenFD, &byte, 1)
}

@inline(never)
func neverRun(_ index: Int) async -> Int { index }

/// Threads of this process blocked in read(2) on the pipe, by /proc/self/task/*/syscall.
func threadsInRead() -> Int {
    guard let directory = opendir("/proc/self/task") else { return 0 }
    defer { closedir(directory) }
    let prefix = "0 0x\(String(neverWrittenFD, radix: 16)) "
    var count = 0
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard Int32(name) != nil, let file = fopen("/proc/self/task/\(name)/syscall", "r") else { continue }
        var buffer = [CChar](repeating: 0, count: 256)
        let line = fgets(&buffer, 256, file) != nil ? String(cString: buffer) : ""
        fclose(file)
        if line.hasPrefix(prefix) { count += 1 }
    }
    return count
}

/// Until `count` threads are blocked in read(2) on the pipe.
func waitForReaders(_ count: Int) {
    var tick = timespec(tv_sec: 0, tv_nsec: 1_000_000)
    while threadsInRead() < count { nanosleep(&tick, nil) }
}

/// Tasks that have reached Registry.lookup's hop.
let queued = Atomic<Int>(0)

func starve() -> Int {
    let pool = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    Task.detached(name: "reloader") { await registry.reload("/etc/registry.conf") }
    waitForReaders(1)
    for key in 0..<3 {
        Task.detached {
            queued.add(1, ordering: .sequentiallyConsistent)
            _ = await registry.lookup(key)
        }
        while queued.load(ordering: .sequentiallyConsistent) <= key { sched_yield() }
    }
    for index in 1..<pool {
        Task.detached(name: "loader \(index)") { await loadConfig("/etc/app\(index).conf") }
        waitForReaders(1 + index)
    }
    for index in 0..<10 { Task.detached { _ = await neverRun(index) } }
    return pool
}

let mode = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "churn"
switch mode {
case "churn": churn()
case "requests": requests()
case "starve":
    let pool = starve()
    print("ready \(getpid()) POOL \(pool)")
    fflush(nil)
    while let _ = readLine() {}
    exit(0)
default:
    print("SwiftAsync: unknown mode \(mode)")
    exit(2)
}
print("ready \(getpid())")
fflush(nil)
while let line = readLine() {
    switch line {
    case "created": print("created \(created.load(ordering: .sequentiallyConsistent))")
    case "cpu": print("cpu \(searchNanoseconds.load(ordering: .sequentiallyConsistent)) \(indexNanoseconds.load(ordering: .sequentiallyConsistent))")
    default: print("unknown \(line)")
    }
    fflush(nil)
}
