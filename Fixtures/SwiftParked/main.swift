// A Swift target with known stacks: a thread parked in Store.ttlLoop() (via a
// generic method, for demangling), a task whose async function blocks in a
// sleep (async frames), main reading stdin until EOF.
#if canImport(Glibc)
import Glibc
#endif

final class Store: @unchecked Sendable {
    @inline(never)
    func ttlLoop() -> Never {
        var period = timespec(tv_sec: 100_000, tv_nsec: 0)
        while true { nanosleep(&period, nil) }
    }

    @inline(never)
    func park<Key: Hashable>(key: Key) -> Never {
        _ = key.hashValue
        ttlLoop()
    }
}

/// Runs on a thread of the concurrency pool and never returns to it.
@inline(never)
func blockInTask(period: Int) async -> Never {
    var time = timespec(tv_sec: period, tv_nsec: 0)
    while true { nanosleep(&time, nil) }
}

private func threadEntry(_: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    Store().park(key: "ttl")
}

var thread = pthread_t()
pthread_create(&thread, nil, threadEntry, nil)
Task.detached { await blockInTask(period: 100_000) }

/// Waits until both the thread and the task show as blocked in a sleep syscall, then says so.
func waitUntilParked() {
    let sleeps: Set<Int> = [35, 230]
    var tick = timespec(tv_sec: 0, tv_nsec: 200_000)
    while true {
        let sleeping = taskIDs().filter { $0 != getpid() && blockedSyscall($0).map(sleeps.contains) == true }
        if sleeping.count >= 2 {
            print("ready \(getpid())")
            fflush(nil)
            return
        }
        nanosleep(&tick, nil)
    }
}

func taskIDs() -> [Int32] {
    guard let dir = opendir("/proc/self/task") else { return [] }
    defer { closedir(dir) }
    var ids: [Int32] = []
    while let entry = readdir(dir) {
        // d_name in place: the entry is only d_reclen bytes long, not a whole struct.
        let name = String(cString: UnsafeRawPointer(entry).advanced(by: MemoryLayout<dirent>.offset(of: \dirent.d_name)!)
            .assumingMemoryBound(to: CChar.self))
        if let id = Int32(name) { ids.append(id) }
    }
    return ids
}

func blockedSyscall(_ tid: Int32) -> Int? {
    guard let file = fopen("/proc/self/task/\(tid)/syscall", "r") else { return nil }
    defer { fclose(file) }
    var buffer = [CChar](repeating: 0, count: 256)
    guard fgets(&buffer, 256, file) != nil else { return nil }
    let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return Int(text.split(separator: " ").first ?? "")
}

waitUntilParked()
while readLine() != nil {}
exit(0)
