/// The counter operations the API is built on.
///
/// Each FastCGI worker owns one store (and so one Redis connection), so a store is used by one
/// thread at a time and need not be `Sendable`. The router sees only this protocol; production
/// code passes a Redis-backed store, tests pass ``MemoryCounterStore``.
public protocol CounterStore: AnyObject {
    /// The current value; a counter that was never written reads as 0. Never writes.
    func read() throws(CounterError) -> Int64
    /// Adds one. With an idempotency key seen before (same client, within the retention window),
    /// it changes nothing and returns the first outcome, marked replayed. `now` stamps a new outcome.
    func increment(idempotency: IdempotencyKey?, now: Timestamp) throws(CounterError) -> WriteOutcome
    /// Sets the counter to 0; idempotency as for ``increment(idempotency:now:)``.
    func reset(idempotency: IdempotencyKey?, now: Timestamp) throws(CounterError) -> WriteOutcome
    /// Checks that the backing store answers (readiness).
    func ping() throws(CounterError)
}

/// Why a counter operation failed. Mapped to HTTP in one place: ``APIError``.
public enum CounterError: Error, Equatable, Sendable {
    /// The store cannot be reached or did not answer in time; the client may retry.
    /// `reason` is for logs only, never for response bodies.
    case unavailable(reason: String)
    /// The store refuses the service for a reason only an operator can fix (a missing ACL
    /// permission, a password it was not given); retrying cannot help. `reason` is for logs only.
    case misconfigured(reason: String)
    /// The stored value is not a 64-bit signed integer; nothing was overwritten.
    case corruptValue
    /// An increment would pass `Int64.max`; the value is unchanged.
    case overflow
    /// The store answered with an error we do not expect (`message` is for logs only).
    case unexpected(message: String)
    /// The idempotency key was first used for the other operation; nothing was done.
    case idempotencyKeyReused(firstUsedFor: WriteOperation)
}
