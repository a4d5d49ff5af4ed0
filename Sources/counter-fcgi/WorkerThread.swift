#if canImport(Glibc)
import Glibc
#endif

/// A POSIX thread running one closure, detached: the server counts finished workers instead of
/// joining, because glibc's `pthread_timedjoin_np` is not visible to Swift without _GNU_SOURCE.
///
/// Workers block in libfcgi's accept and in hiredis calls, so they are real threads rather than
/// tasks on Swift's cooperative pool, which must never block.
final class WorkerThread {
    private final class Body {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }

    /// Starts `body` on a new thread.
    init(_ body: @escaping () -> Void) throws(ServerError) {
        var thread = pthread_t()
        let context = Unmanaged.passRetained(Body(body)).toOpaque()
        let status = pthread_create(&thread, nil, { context in
            Unmanaged<Body>.fromOpaque(context!).takeRetainedValue().run()
            return nil
        }, context)
        guard status == 0 else {
            Unmanaged<Body>.fromOpaque(context).release()
            throw ServerError(description: "cannot start a worker thread: \(String(cString: strerror(status)))")
        }
        pthread_detach(thread)
    }

}
