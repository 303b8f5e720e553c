// The kernel accepts ptrace requests only from the thread that attached, so
// captures run on a thread of their own, never on a Dispatch queue or an async task.
import Glibc

private final class ThreadWork {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

private final class Outcome<T, E: Error> {
    var value: Result<T, E>?
}

enum TracerThread {
    /// Runs `body` on a new thread and waits for it.
    static func run<T, E: Error>(_ body: @escaping () throws(E) -> T) throws(E) -> T {
        let outcome = Outcome<T, E>()
        let work = ThreadWork { outcome.value = Result { () throws(E) -> T in try body() } }
        var thread = pthread_t()
        let started = pthread_create(&thread, nil, { context in
            Unmanaged<ThreadWork>.fromOpaque(context!).takeRetainedValue().body()
            return nil
        }, Unmanaged.passRetained(work).toOpaque())
        if started == 0 {
            pthread_join(thread, nil)
        } else {
            // No thread to be had: run here; every ptrace call still comes from one thread.
            work.body()
        }
        return try outcome.value!.get()
    }
}

/// Work started on a thread of its own now and collected later: reading
/// /proc/kallsyms (35 ms of kernel time) overlaps with symbolizing user frames.
final class BackgroundJob<T> {
    private let outcome = Outcome<T, Never>()
    private var thread = pthread_t()
    private var started = false
    private var joined = false

    init(_ body: @escaping () -> T) {
        let outcome = self.outcome
        let work = ThreadWork { outcome.value = .success(body()) }
        started = pthread_create(&thread, nil, { context in
            Unmanaged<ThreadWork>.fromOpaque(context!).takeRetainedValue().body()
            return nil
        }, Unmanaged.passRetained(work).toOpaque()) == 0
        if !started {
            Unmanaged<ThreadWork>.passUnretained(work).release()
            work.body()
        }
    }

    /// Waits for the work and returns its result.
    var value: T {
        if started && !joined {
            pthread_join(thread, nil)
            joined = true
        }
        switch outcome.value! {
        case .success(let result): return result
        }
    }

    deinit { _ = value }
}
