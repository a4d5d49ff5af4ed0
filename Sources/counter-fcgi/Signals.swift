#if canImport(Glibc)
import Glibc
#endif

/// Process signals, handled without async-signal handlers.
///
/// libfcgi's `FCGX_Init` installs a SIGTERM handler that only sets a flag checked between
/// requests, so threads blocked in accept(2) would never notice it. Instead, SIGTERM and SIGINT
/// are blocked in every thread (the mask is inherited by threads created afterwards) and the
/// main thread takes them synchronously with `sigwait`, then runs the shutdown in plain code.
enum Signals {
    /// The signals that stop the server.
    static var termination: sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        return set
    }

    /// Blocks the termination signals in this thread and in threads it creates later, and
    /// ignores SIGPIPE (a web server that hangs up must cost a failed write, not the process).
    /// Call before creating any thread.
    static func prepare() {
        signal(SIGPIPE, SIG_IGN)
        var set = termination
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Waits for SIGTERM or SIGINT and returns its name.
    static func waitForTermination() -> String {
        var set = termination
        var received: Int32 = 0
        while sigwait(&set, &received) != 0 {}
        return received == SIGTERM ? "SIGTERM" : "SIGINT"
    }
}
