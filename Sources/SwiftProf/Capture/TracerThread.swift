// The kernel accepts ptrace requests only from the thread that attached, so
// captures run on a thread of their own, never on a Dispatch queue or an async task.
import Foundation

private final class Outcome<T, E: Error>: @unchecked Sendable {
    var value: Result<T, E>?
}

enum TracerThread {
    static func run<T: Sendable, E: Error>(_ body: @escaping @Sendable () throws(E) -> T) throws(E) -> T {
        let outcome = Outcome<T, E>()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            outcome.value = Result { () throws(E) -> T in try body() }
            done.signal()
        }
        thread.name = "swiftprof-tracer"
        thread.start()
        done.wait()
        return try outcome.value!.get()
    }
}
