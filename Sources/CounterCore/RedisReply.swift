/// A reply from Redis, copied out of hiredis's `redisReply` before it is freed (the connection
/// owner does the copy); pure Swift, so what is read from replies is tested without a server.
public enum RedisReply: Equatable, Sendable {
    case string([UInt8])
    case integer(Int64)
    case status(String)
    case error(String)
    case null
    case array([RedisReply])

    /// The text of a bulk or status string.
    public var text: String? {
        switch self {
        case .string(let bytes): String(decoding: bytes, as: UTF8.self)
        case .status(let text): text
        default: nil
        }
    }
}
