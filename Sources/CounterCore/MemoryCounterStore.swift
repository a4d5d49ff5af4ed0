/// An in-memory ``CounterStore`` with the same semantics as the Redis one, for tests and for
/// exercising the router without Redis. Failures can be injected to drive every error path.
public final class MemoryCounterStore: CounterStore {
    /// What the next operations should fail with; `nil` serves normally.
    public var failure: CounterError?
    /// The raw stored value, as Redis would hold it; `nil` is a missing key.
    public var stored: String?
    /// How many operations changed the stored value (lets tests prove that a read never writes).
    public private(set) var writes = 0

    /// Creates a store holding `stored` (a missing key by default).
    public init(stored: String? = nil) {
        self.stored = stored
    }

    public func read() throws(CounterError) -> Int64 {
        if let failure { throw failure }
        guard let stored else { return 0 }
        guard let value = CounterValue.parse(Array(stored.utf8)) else { throw .corruptValue }
        return value
    }

    public func increment() throws(CounterError) -> Int64 {
        let current = try read()
        let (next, overflow) = current.addingReportingOverflow(1)
        if overflow { throw .overflow }
        stored = String(next)
        writes += 1
        return next
    }

    public func reset() throws(CounterError) {
        if let failure { throw failure }
        stored = "0"
        writes += 1
    }

    public func ping() throws(CounterError) {
        if let failure { throw failure }
    }
}
