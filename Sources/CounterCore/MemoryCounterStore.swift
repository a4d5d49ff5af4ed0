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

    // MARK: Named counters

    /// The named counters' raw stored values, as Redis would hold them.
    public var named: [CounterName: String] = [:]
    /// First outcomes of named writes, by counter and idempotency key.
    private var namedRecords: [String: (NamedWrite, WriteOutcome)] = [:]

    /// The stored value of `name`, parsed as Redis would; nil when absent.
    public func value(of name: CounterName) throws(CounterError) -> Int64? {
        if let failure { throw failure }
        guard let stored = named[name] else { return nil }
        guard let value = CounterValue.parse(Array(stored.utf8)) else { throw .corruptValue }
        return value
    }

    /// Does `write`, or replays the first outcome of a key seen before on this counter.
    public func apply(_ write: NamedWrite, to name: CounterName, idempotency: IdempotencyKey?, now: Timestamp) throws(CounterError) -> WriteOutcome {
        if let failure { throw failure }
        let recordKey = idempotency.map { name.idempotencyKey(for: $0) }
        if let recordKey, let (first, outcome) = namedRecords[recordKey] {
            guard first == write else { throw .idempotencyKeyReusedForWrite(first) }
            var replay = outcome
            replay.replayed = true
            return replay
        }
        let value: Int64
        switch write {
        case .increment(let by), .decrement(let by):
            let current = try self.value(of: name) ?? 0
            let (next, overflow) = write == .increment(by: by) ? current.addingReportingOverflow(by) : current.subtractingReportingOverflow(by)
            if overflow { throw .overflow }
            named[name] = String(next)
            value = next
        case .set(let newValue):
            named[name] = String(newValue)
            value = newValue
        case .delete:
            value = named.removeValue(forKey: name) == nil ? 0 : 1
        }
        writes += 1
        let outcome = WriteOutcome(value: value, replayed: false, timestamp: now)
        if let recordKey { namedRecords[recordKey] = (write, outcome) }
        return outcome
    }

    /// Pages in name order; the cursor is the last name of the page before.
    public func list(prefix: CounterPrefix, limit: Int, cursor: String) throws(CounterError) -> CounterPage {
        if let failure { throw failure }
        var after: CounterName?
        if !cursor.isEmpty {
            guard let name = CounterName(cursor) else { throw .invalidCursor }
            after = name
        }
        let names = named.keys.filter { name in name.hasPrefix(prefix) && (after.map { $0 < name } ?? true) }.sorted()
        let page = names.prefix(limit)
        var counters: [(name: CounterName, value: Int64)] = []
        for name in page {
            guard let value = try value(of: name) else { continue }
            counters.append((name, value))
        }
        return CounterPage(counters: counters, next: names.count > limit ? page.last?.text : nil)
    }
}
