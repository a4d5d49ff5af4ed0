import CounterRedis
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A joinable POSIX thread running one `@Sendable` closure.
///
/// Workers block in libfcgi's accept and in hiredis calls, so they are real threads rather than
/// tasks on Swift's cooperative pool, which must never block. The closure is `@Sendable`, so the
/// compiler checks everything it captures for data races.
///
/// Joining is bounded by the caller: ``isFinished`` turns true when the closure has returned, and
/// ``join()`` is then immediate (glibc's `pthread_timedjoin_np` needs _GNU_SOURCE, which Swift's
/// Glibc module does not define).
final class WorkerThread: Sendable {
    private final class Body: Sendable {
        let run: @Sendable () -> Void
        let finished = Atomic<Bool>(false)
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }

    private let body: Body
    private let thread: pthread_t
    private let joined = Atomic<Bool>(false)

    /// Starts `run` on a new thread.
    init(_ run: @escaping @Sendable () -> Void) throws(ServerError) {
        let body = Body(run)
        let context = Unmanaged.passRetained(body).toOpaque()
        var thread = pthread_t()
        let status = pthread_create(&thread, nil, { context in
            let body = Unmanaged<Body>.fromOpaque(context!).takeRetainedValue()
            body.run()
            body.finished.store(true, ordering: .releasing)
            return nil
        }, context)
        guard status == 0 else {
            Unmanaged<Body>.fromOpaque(context).release()
            throw ServerError(description: "cannot start a thread: \(String(cString: strerror(status)))")
        }
        self.body = body
        self.thread = thread
    }

    /// True once the closure has returned (the thread is then about to end).
    var isFinished: Bool { body.finished.load(ordering: .acquiring) }

    /// Waits for the thread to end. Call once, from one thread; immediate when ``isFinished``.
    func join() {
        guard !joined.exchange(true, ordering: .acquiringAndReleasing) else { return }
        pthread_join(thread, nil)
    }

    /// Waits until every thread of `threads` has finished or `deadline` (monotonic nanoseconds)
    /// passes; joins those that finished. Returns how many are still running.
    static func join(_ threads: [WorkerThread], before deadline: UInt64) -> Int {
        while threads.contains(where: { !$0.isFinished }), MonotonicClock.now() < deadline {
            usleep(2_000)
        }
        var running = 0
        for thread in threads {
            if thread.isFinished { thread.join() } else { running += 1 }
        }
        return running
    }
}
