/// An in-memory ``CounterStore`` with the same semantics as the Redis one, for tests and for
/// exercising the router without Redis. Failures can be injected to drive every error path.
public final class MemoryCounterStore: CounterStore {
    /// What the next operations should fail with; `nil` serves normally.
    public var failure: CounterError?
    /// The raw stored value, as Redis would hold it; `nil` is a missing key.
    public var stored: String?
    /// How many operations changed the stored value (lets tests prove that a read never writes).
    public private(set) var writes = 0
    /// First outcomes by idempotency key (no expiry: tests are short).
    private var records: [IdempotencyKey: (WriteOperation, WriteOutcome)] = [:]

    /// Creates a store holding `stored` (a missing key by default).
    public init(stored: String? = nil) {
        self.stored = stored
    }

    /// The stored value, parsed as Redis would (a corrupt value throws).
    public func read() throws(CounterError) -> Int64 {
        if let failure { throw failure }
        guard let stored else { return 0 }
        guard let value = CounterValue.parse(Array(stored.utf8)) else { throw .corruptValue }
        return value
    }

    /// Adds one, or replays the first outcome of a key seen before.
    public func increment(idempotency: IdempotencyKey?, now: Timestamp) throws(CounterError) -> WriteOutcome {
        try write(.increment, idempotency: idempotency, now: now) { () throws(CounterError) -> Int64 in
            let (next, overflow) = try read().addingReportingOverflow(1)
            if overflow { throw .overflow }
            return next
        }
    }

    /// Sets the counter to 0, or replays the first outcome of a key seen before.
    public func reset(idempotency: IdempotencyKey?, now: Timestamp) throws(CounterError) -> WriteOutcome {
        try write(.reset, idempotency: idempotency, now: now) { () throws(CounterError) -> Int64 in 0 }
    }

    private func write(_ operation: WriteOperation, idempotency: IdempotencyKey?, now: Timestamp,
                       next: () throws(CounterError) -> Int64) throws(CounterError) -> WriteOutcome {
        if let failure { throw failure }
        if let idempotency, let (firstOperation, first) = records[idempotency] {
            guard firstOperation == operation else { throw .idempotencyKeyReused(firstUsedFor: firstOperation) }
            var replay = first
            replay.replayed = true
            return replay
        }
        let value = try next()
        stored = String(value)
        writes += 1
        let outcome = WriteOutcome(value: value, replayed: false, timestamp: now)
        if let idempotency { records[idempotency] = (operation, outcome) }
        return outcome
    }

    /// Answers unless a ``failure`` is set, which it then throws.
    public func ping() throws(CounterError) {
        if let failure { throw failure }
    }
}
