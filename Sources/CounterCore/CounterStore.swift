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

    // MARK: Named counters (`/v1/counters`)

    /// The value of the counter `name`; nil when it does not exist. Never writes.
    func value(of name: CounterName) throws(CounterError) -> Int64?
    /// Does `write` on the counter `name` and returns the value after it (for a delete: 1 when the
    /// counter existed, 0 when not). Past the 64-bit range: ``CounterError/overflow``, nothing
    /// changed. With an idempotency key seen before on this counter, changes nothing and returns
    /// the first outcome, marked replayed; a key first used for another write throws
    /// ``CounterError/idempotencyKeyReusedForWrite(_:)``.
    func apply(_ write: NamedWrite, to name: CounterName, idempotency: IdempotencyKey?, now: Timestamp) throws(CounterError) -> WriteOutcome
    /// Up to `limit` counters whose names start with `prefix`, from `cursor` (empty: the first page;
    /// else a page's ``CounterPage/next``, which is opaque). A counter that exists for the whole
    /// listing appears at least once; one created or deleted meanwhile may or may not.
    func list(prefix: CounterPrefix, limit: Int, cursor: String) throws(CounterError) -> CounterPage
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
    /// The idempotency key was first used on this named counter for another write (another
    /// operation, or another argument); nothing was done.
    case idempotencyKeyReusedForWrite(NamedWrite)
    /// A listing's cursor that no page handed out; nothing was read.
    case invalidCursor
}
