/// A write to a named counter, as it is done, named in responses, and fingerprinted in its
/// idempotency record (so a key reused for another write, or the same write with another
/// argument, is told apart from a retry).
public enum NamedWrite: Sendable, Equatable {
    /// Adds `by` (1 to `Int64.max`), creating the counter at 0 first.
    case increment(by: Int64)
    /// Subtracts `by` (1 to `Int64.max`), creating the counter at 0 first.
    case decrement(by: Int64)
    /// Creates the counter or sets it to the value.
    case set(Int64)
    /// Removes the counter.
    case delete

    /// The operation's name, as in response bodies and records.
    public var operation: String { operationLiteral.description }

    /// The operation's name as a literal (written into every response body without a copy).
    var operationLiteral: StaticString {
        switch self {
        case .increment: "increment"
        case .decrement: "decrement"
        case .set: "set"
        case .delete: "delete"
        }
    }

    /// The operation's argument as the script takes it (`0` for delete).
    public var argument: String {
        switch self {
        case .increment(let by), .decrement(let by): String(by)
        case .set(let value): String(value)
        case .delete: "0"
        }
    }

    /// The write a record's fingerprint (`operation/argument`) names; nil for anything else.
    public init?(fingerprint: Substring) {
        let parts = fingerprint.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, let argument = CounterValue.parse(Array(parts[1].utf8)) else { return nil }
        switch parts[0] {
        case "increment" where argument > 0: self = .increment(by: argument)
        case "decrement" where argument > 0: self = .decrement(by: argument)
        case "set": self = .set(argument)
        case "delete" where argument == 0: self = .delete
        default: return nil
        }
    }

    /// `operation/argument`: what a record remembers of the write.
    public var fingerprint: String { "\(operation)/\(argument)" }
}

/// The record an idempotent named write leaves beside its counter, and the script that does the
/// write and records it in one atomic step (the same design as ``IdempotencyRecord`` for the
/// default counter; one home for the format).
public enum NamedRecord {
    /// KEYS: the counter's value key, the record key (both under the name's hash tag: one slot).
    /// ARGV: operation, argument, TTL seconds, timestamp. Returns {1, record} for a replay,
    /// {0, record} for a new write; the record is `operation/argument:value:timestamp`, where the
    /// value of a delete is 1 when the counter existed and 0 when it did not. A failing INCRBY or
    /// DECRBY (not an integer, overflow) aborts the script with nothing written or recorded.
    public static let writeOnceScript = """
        local record = redis.call('GET', KEYS[2])
        if record then return {1, record} end
        local op = ARGV[1]
        local value
        if op == 'increment' then
          redis.call('INCRBY', KEYS[1], ARGV[2])
          -- Read back as a string: Lua numbers are doubles, exact only up to 2^53.
          value = redis.call('GET', KEYS[1])
        elseif op == 'decrement' then
          redis.call('DECRBY', KEYS[1], ARGV[2])
          value = redis.call('GET', KEYS[1])
        elseif op == 'set' then
          redis.call('SET', KEYS[1], ARGV[2])
          value = ARGV[2]
        elseif op == 'delete' then
          value = tostring(redis.call('DEL', KEYS[1]))
        else
          return redis.error_reply('ERR unknown named write ' .. op)
        end
        record = op .. '/' .. ARGV[2] .. ':' .. value .. ':' .. ARGV[4]
        redis.call('SET', KEYS[2], record, 'EX', tonumber(ARGV[3]))
        return {0, record}
        """

    /// A stored record read back: the write it was first used for and its outcome; nil if the
    /// text is not one.
    public static func parse(_ record: String) -> (NamedWrite, WriteOutcome)? {
        let parts = record.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, let write = NamedWrite(fingerprint: parts[0]),
              let value = CounterValue.parse(Array(parts[1].utf8)), let timestamp = Timestamp(text: String(parts[2])) else {
            return nil
        }
        return (write, WriteOutcome(value: value, replayed: false, timestamp: timestamp))
    }
}

/// One page of a listing: counters in name order within the page, and where the next page starts.
public struct CounterPage: Sendable, Equatable {
    /// The counters of this page, with their values.
    public var counters: [(name: CounterName, value: Int64)]
    /// The opaque cursor of the next page; nil when this is the last.
    public var next: String?

    /// A page from its parts.
    public init(counters: [(name: CounterName, value: Int64)], next: String?) {
        self.counters = counters
        self.next = next
    }

    public static func == (lhs: CounterPage, rhs: CounterPage) -> Bool {
        lhs.next == rhs.next && lhs.counters.elementsEqual(rhs.counters) { $0.name == $1.name && $0.value == $1.value }
    }
}
