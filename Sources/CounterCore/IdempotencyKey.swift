/// A client's `Idempotency-Key` for a write (draft-ietf-httpapi-idempotency-key-header).
///
/// Taken as clients send it: most send a bare value (`Idempotency-Key: 8e03978e-40d5-...`), the
/// draft says a Structured Field string (`Idempotency-Key: "8e03978e-40d5-..."`). Both are
/// accepted, and a valid quoted string is unquoted first, so `"abc"` and `abc` are one key.
///
/// Keys are scoped to the caller (nginx passes the API key's *name*), so two clients can never
/// replay each other's responses, and they live next to the counter in Redis.
public struct IdempotencyKey: Sendable, Hashable {
    /// The longest key accepted, in bytes after unquoting.
    public static let maxLength = 255

    /// Who sent it: the API key's name as nginx passes it (`-` when unknown).
    public let client: String
    /// The key itself, unquoted.
    public let value: String

    /// The key `value` as `client` (the API key's name) sent it, already unquoted.
    public init(client: String, value: String) {
        self.client = client
        self.value = value
    }

    /// Parses the header as sent: 1 to ``maxLength`` printable ASCII characters (space to `~`),
    /// unquoted first when the whole value is a valid Structured Field string (RFC 8941 §3.3.3:
    /// quotes around printable ASCII where only `\"` and `\\` are escapes). Anything else that is
    /// printable ASCII is the key exactly as sent. Nil when empty, too long or not printable ASCII.
    public init?(header: String, client: String) {
        let bytes = Array(header.utf8)
        guard bytes.allSatisfy({ (0x20...0x7E).contains($0) }) else { return nil }
        let value = IdempotencyKey.unquoted(bytes) ?? bytes
        guard !value.isEmpty, value.count <= IdempotencyKey.maxLength else { return nil }
        self.init(client: client.isEmpty ? "-" : client, value: String(decoding: value, as: UTF8.self))
    }

    /// The content of a Structured Field string, or nil when `bytes` is not one.
    static func unquoted(_ bytes: [UInt8]) -> [UInt8]? {
        guard bytes.count >= 2, bytes.first == UInt8(ascii: "\""), bytes.last == UInt8(ascii: "\"") else { return nil }
        var value: [UInt8] = []
        var index = 1
        while index < bytes.count - 1 {
            var byte = bytes[index]
            if byte == UInt8(ascii: "\\") {
                index += 1
                guard index < bytes.count - 1 else { return nil }
                byte = bytes[index]
                guard byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { return nil }
            } else if byte == UInt8(ascii: "\"") {
                return nil
            }
            value.append(byte)
            index += 1
        }
        return value
    }

    /// The Redis key that holds this key's first response. It shares the counter key's hash slot
    /// (same hash tag), so the script that reads both would also run on Redis Cluster.
    public func storageKey(counterKey: String) -> String {
        "{\(IdempotencyKey.hashTag(of: counterKey))}:idempotency:\(client):\(value)"
    }

    /// What Redis Cluster hashes for `key`: the text of its first non-empty `{...}`, else all of it.
    static func hashTag(of key: String) -> Substring {
        if let open = key.firstIndex(of: "{") {
            let rest = key[key.index(after: open)...]
            if let close = rest.firstIndex(of: "}"), close > rest.startIndex {
                return rest[..<close]
            }
        }
        return Substring(key)
    }
}

/// The result of a write: the counter after it, and whether it is a replay of an earlier request
/// with the same idempotency key (then `timestamp` is that first response's).
public struct WriteOutcome: Sendable, Equatable {
    /// The counter's value after the write.
    public var value: Int64
    /// True when this is a replay of the first outcome, not a new write.
    public var replayed: Bool
    /// When the write was first done (a replay keeps the first time).
    public var timestamp: Timestamp

    /// An outcome from its parts.
    public init(value: Int64, replayed: Bool, timestamp: Timestamp) {
        self.value = value
        self.replayed = replayed
        self.timestamp = timestamp
    }
}

/// The two writes, as they are named in bodies and in stored idempotency records.
public enum WriteOperation: String, Sendable {
    case increment
    case reset
}
