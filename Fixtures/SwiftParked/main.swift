// A Swift target with known stacks: a thread parked in Store.ttlLoop() (via a
// generic method, for demangling), main reading stdin until EOF.
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

private func threadEntry(_: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    Store().park(key: "ttl")
}

var thread = pthread_t()
pthread_create(&thread, nil, threadEntry, nil)

/// Waits until the thread shows as blocked in a sleep syscall, then says so.
func waitUntilParked() {
    let sleeps: Set<Int> = [35, 230]
    var tick = timespec(tv_sec: 0, tv_nsec: 200_000)
    while true {
        for tid in taskIDs() where tid != getpid() {
            if let nr = blockedSyscall(tid), sleeps.contains(nr) {
                print("ready \(getpid())")
                fflush(nil)
                return
            }
        }
        nanosleep(&tick, nil)
    }
}

func taskIDs() -> [Int32] {
    guard let dir = opendir("/proc/self/task") else { return [] }
    defer { closedir(dir) }
    var ids: [Int32] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
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
