import Synchronization

/// News shared by all workers that Redis answers again: the time (monotonic ns) a worker last had
/// a command answered on a fresh connection. A worker in backoff that sees news newer than its
/// own last failure tries again at once (``ReconnectPolicy/allowsAttempt(now:nextAttempt:lastFailure:recoveredAt:)``),
/// so after a failover the service comes back with its first good answer, not worker by worker.
/// Written once per new connection and read only when a worker has no connection: nothing on the
/// steady path.
public final class RedisRecovery: Sendable {
    private let last = Atomic<UInt64>(0)

    public init() {}

    var recoveredAt: UInt64 { last.load(ordering: .acquiring) }

    func record(_ now: UInt64) {
        _ = last.max(now, ordering: .releasing)
    }
}
