/// The record an idempotent write leaves in Redis, and the script that writes it: one file, so the
/// format has one home. Only the script writes records (in Redis, atomically with the write);
/// Swift only reads them back (``parse(_:)``), and the integration tests parse what the real
/// script wrote in a real Redis.
public enum IdempotencyRecord {
    /// The write-once script. KEYS: counter, record. ARGV: operation, TTL seconds, timestamp.
    /// Returns {1, record} for a replay, {0, record} for a new write; the record is
    /// `operation:value:timestamp`. A failing INCR (not an integer, overflow) aborts it unrecorded.
    public static let writeOnceScript = """
        local record = redis.call('GET', KEYS[2])
        if record then return {1, record} end
        local value = '0'
        if ARGV[1] == 'increment' then
          redis.call('INCR', KEYS[1])
          -- Read the value back as a string: Lua numbers are doubles, exact only up to 2^53.
          value = redis.call('GET', KEYS[1])
        else
          redis.call('SET', KEYS[1], '0')
        end
        record = ARGV[1] .. ':' .. value .. ':' .. ARGV[3]
        redis.call('SET', KEYS[2], record, 'EX', tonumber(ARGV[2]))
        return {0, record}
        """

    /// A stored record read back: the operation it was first used for and its outcome; nil if
    /// the text is not one.
    public static func parse(_ record: String) -> (WriteOperation, WriteOutcome)? {
        let parts = record.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, let operation = WriteOperation(rawValue: String(parts[0])),
              let value = CounterValue.parse(Array(parts[1].utf8)), let timestamp = Timestamp(text: String(parts[2])) else {
            return nil
        }
        return (operation, WriteOutcome(value: value, replayed: false, timestamp: timestamp))
    }
}
