// Ctrl-C, SIGTERM and SIGHUP end a sampling run cleanly: the run notices
// between samples, every thread is already let go, and the profile is printed.
// A second signal ends swiftprof at once (the kernel then detaches any thread
// still held).
import Glibc
import Synchronization

enum StopSignals {
    static let received = Atomic<Int32>(0)

    static func install() {
        // A parent may have started us with these blocked: they must reach the handler.
        var mask = sigset_t()
        sigemptyset(&mask)
        for signal in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&mask, signal) }
        pthread_sigmask(SIG_UNBLOCK, &mask, nil)
        for signal in [SIGINT, SIGTERM, SIGHUP] {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { number in
                StopSignals.received.store(number, ordering: .relaxed)
                Glibc.signal(number, SIG_DFL)
            }
            sigemptyset(&action.sa_mask)
            sigaction(signal, &action, nil)
        }
    }

    static var requested: Bool { received.load(ordering: .relaxed) != 0 }
}
