/// When a worker may try Redis again after failures: a value, like a pool's retry configuration.
///
/// The first retry after a working connection broke is immediate (Redis may just have restarted,
/// or a failover just finished, and waiting would turn one blip into a burst of 503s); after that
/// the delay doubles from `base` up to `cap`, with jitter over its upper half so that workers that
/// failed together do not retry together. The cap (500 ms) keeps recovery under a second once
/// Redis answers again. Requests in between fail fast with 503: none waits for Redis.
///
/// A worker's backoff is its own, but the news that Redis works again is shared: once any worker
/// has a command answered after its last failure, the others may try at once (``allowsAttempt``).
/// Without that, after a failover each worker would keep refusing requests for the rest of its own
/// backoff although Redis already answers (docs/reliability.md has the figures).
public struct ReconnectPolicy: Sendable, Equatable {
    /// The first delay after the immediate retry, in nanoseconds.
    public var baseNS: UInt64
    /// The longest delay, in nanoseconds.
    public var capNS: UInt64

    /// A policy with its first and longest delays.
    public init(baseNS: UInt64 = 25_000_000, capNS: UInt64 = 500_000_000) {
        self.baseNS = baseNS
        self.capNS = capNS
    }

    /// The earliest time (monotonic ns) of the next attempt after `failures` consecutive failures,
    /// the last at `now`. `jitter` is a fraction in 0...1 (random in production).
    public func nextAttempt(failures: Int, now: UInt64, jitter: Double) -> UInt64 {
        guard failures > 1 else { return now }
        let shift = UInt64(min(failures - 2, 20))
        let step = min(capNS, baseNS << shift)
        let spread = Double(step / 2) * min(max(jitter, 0), 1)
        return now + step / 2 + UInt64(spread)
    }

    /// Whether a worker may try to connect at `now`: its backoff is over, or another worker has
    /// had Redis answer since this worker's last failure (`recoveredAt`, 0 when never).
    public func allowsAttempt(now: UInt64, nextAttempt: UInt64, lastFailure: UInt64, recoveredAt: UInt64) -> Bool {
        now >= nextAttempt || recoveredAt > lastFailure
    }
}
