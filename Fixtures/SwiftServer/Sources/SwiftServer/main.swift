// A Hummingbird 2 server whose requests are suspended in known functions, in
// known numbers, for `dump --tasks` (Tests/SwiftProfTests/DumpServerTasksTests.swift).
// It sends the requests to itself, one connection each, and never answers them:
//   SLEEP requests in nap(), in Task.sleep;
//   WAIT requests in Events.waitForEvent(), on a continuation nobody resumes;
//   FAN requests in gatherQuotes(), awaiting a task group of 3 children in fetchQuote(_:);
//   LEDGER requests in Ledger.record(_:), waiting for the actor Ledger, which is busy
//   forever: a task named "auditor" runs Ledger.audit(), blocked in read(2) on a pipe
//   nobody writes (a running task, on a thread of the cooperative pool);
//   a task named "sweeper" in sweep(), in Task.sleep.
// Prints "ready PID AUDITOR_TID tid" once every request is suspended, then reads
// stdin until EOF. `load` starts a client thread that sends GET /price requests
// one after another, each answered after handlePrice() has suspended once and then
// computed in crunch(_:) (answers "loading").
import Hummingbird
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

let counts = (sleep: 5, wait: 4, fan: 2, ledger: 3)

/// How many handlers have reached their await, and the auditor's thread.
final class Progress: @unchecked Sendable {
    private var lock = pthread_mutex_t()
    private var arrived = 0
    private var auditorThread: Int32 = 0
    private var parked: [CheckedContinuation<Void, Never>] = []
    init() { pthread_mutex_init(&lock, nil) }
    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        return body()
    }
    func arrive() { locked { arrived += 1 } }
    var arrivals: Int { locked { arrived } }
    func auditorRuns(on tid: Int32) { locked { auditorThread = tid } }
    var auditor: Int32 { locked { auditorThread } }
    func keep(_ continuation: CheckedContinuation<Void, Never>) { locked { parked.append(continuation) } }
}

let progress = Progress()
var neverWritten: [Int32] = [0, 0]
_ = pipe(&neverWritten)
let neverWrittenFD = neverWritten[0]

@inline(never)
func nap() async {
    progress.arrive()
    try? await Task.sleep(nanoseconds: 100_000 * 1_000_000_000)
}

enum Events {
    @inline(never)
    static func waitForEvent() async {
        progress.arrive()
        await withCheckedContinuation { progress.keep($0) }
    }
}

@inline(never)
func fetchQuote(_ index: Int) async -> Int {
    try? await Task.sleep(nanoseconds: 100_000 * 1_000_000_000)
    return index
}

@inline(never)
func gatherQuotes() async -> Int {
    await withTaskGroup(of: Int.self) { group in
        for index in 0..<3 { group.addTask { await fetchQuote(index) } }
        progress.arrive()
        var sum = 0
        for await quote in group { sum += quote }
        return sum
    }
}

actor Ledger {
    var entries = 0
    /// Blocks its thread (and so the actor) in read(2): the mistake this shows.
    @inline(never)
    func audit() {
        progress.auditorRuns(on: currentThreadID())
        var byte: UInt8 = 0
        _ = read(neverWrittenFD, &byte, 1)
    }
    @inline(never)
    func record(_ amount: Int) {
        entries += amount
    }
}

let ledger = Ledger()

@inline(never)
func sweep() async {
    try? await Task.sleep(nanoseconds: 100_000 * 1_000_000_000)
}

@inline(never)
func crunch(_ rounds: Int) -> Int {
    var value = 0
    for round in 0..<rounds { value = value &* 31 &+ round }
    return value
}

@inline(never)
func handlePrice() async -> Int {
    await Task.yield()
    return crunch(200_000)
}

let router = Router()
router.get("sleep") { _, _ -> String in
    await nap()
    return "slept"
}
router.get("wait") { _, _ -> String in
    await Events.waitForEvent()
    return "woken"
}
router.get("fan") { _, _ -> String in
    "\(await gatherQuotes())"
}
router.get("price") { _, _ -> String in
    "\(await handlePrice())"
}
router.get("ledger") { _, _ -> String in
    progress.arrive()
    await ledger.record(1)
    return "recorded"
}

/// The socket of a new connection to the server; -1 when it refuses (it has stopped).
func connectToServer(port: Int) -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
        close(fd)
        return -1
    }
    return fd
}

/// GET /price, one request a connection, each read to its end, for ever.
func sendPriceRequests(port: Int) {
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let fd = connectToServer(port: port)
        guard fd >= 0 else { return }
        let request = "GET /price HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        while read(fd, &buffer, buffer.count) > 0 {}
        close(fd)
    }
}

/// One connection per request, written and left open (the answers never come).
func sendRequests(port: Int) {
    let paths = Array(repeating: "/sleep", count: counts.sleep) + Array(repeating: "/wait", count: counts.wait)
        + Array(repeating: "/fan", count: counts.fan) + Array(repeating: "/ledger", count: counts.ledger)
    for path in paths {
        let fd = connectToServer(port: port)
        precondition(fd >= 0, "connect: \(errno)")
        let request = "GET \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n"
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
    }
}

/// The kernel's id of the calling thread (Glibc's gettid is not imported): /proc/thread-self
/// links to "PID/task/TID".
func currentThreadID() -> Int32 {
    var buffer = [CChar](repeating: 0, count: 64)
    let length = readlink("/proc/thread-self", &buffer, buffer.count - 1)
    guard length > 0 else { return 0 }
    let link = String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return Int32(link.split(separator: "/").last ?? "") ?? 0
}

/// The process's threads, by /proc, with their state letters.
func threadStates() -> [(tid: Int32, state: Character)] {
    guard let directory = opendir("/proc/self/task") else { return [] }
    defer { closedir(directory) }
    var states: [(Int32, Character)] = []
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard let tid = Int32(name), let file = fopen("/proc/self/task/\(tid)/stat", "r") else { continue }
        var buffer = [CChar](repeating: 0, count: 512)
        let read = fgets(&buffer, 512, file) != nil
        fclose(file)
        let line = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if read, let close = line.lastIndex(of: ")"), let state = line[line.index(close, offsetBy: 2)...].first {
            states.append((tid, state))
        }
    }
    return states
}

/// Every request has reached its await and every thread but this one sleeps,
/// three times in a row.
func waitUntilSuspended(caller: Int32) {
    let expected = counts.sleep + counts.wait + counts.fan + counts.ledger
    var tick = timespec(tv_sec: 0, tv_nsec: 1_000_000)
    var quiet = 0
    while quiet < 3 {
        nanosleep(&tick, nil)
        let others = threadStates().filter { $0.tid != caller }
        let settled = progress.arrivals == expected && progress.auditor != 0
            && !others.isEmpty && others.allSatisfy { $0.state == "S" }
        quiet = settled ? quiet + 1 : 0
    }
}

let app = Application(
    router: router,
    configuration: .init(address: .hostname("127.0.0.1", port: 0)),
    onServerRunning: { channel in
        let port = channel.localAddress?.port ?? 0
        Task(name: "auditor") { await ledger.audit() }
        Task.detached(name: "sweeper") { await sweep() }
        // A plain thread: the fixture's own waiting must not hold a task or a pool thread.
        Thread.detach {
            while progress.auditor == 0 { sched_yield() }
            sendRequests(port: port)
            let me = currentThreadID()
            waitUntilSuspended(caller: me)
            print("ready \(getpid()) AUDITOR_TID \(progress.auditor)")
            fflush(nil)
            while let line = readLine() {
                if line == "load" { Thread.detach { sendPriceRequests(port: port) } }
                print(line == "load" ? "loading" : "unknown \(line)")
                fflush(nil)
            }
            exit(0)
        }
    }
)

/// A detached pthread running `body`.
enum Thread {
    static func detach(_ body: @escaping @Sendable () -> Void) {
        final class Box: @unchecked Sendable { let body: @Sendable () -> Void; init(_ body: @escaping @Sendable () -> Void) { self.body = body } }
        var thread = pthread_t()
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        pthread_create(&thread, nil, { raw in
            Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, box)
        pthread_detach(thread)
    }
}

try await app.runService()
