/// Where Redis is: TCP by default; a `REDIS_HOST` that starts with `/` is a unix socket path
/// (Redis beside the responder, e.g. in tests).
public enum RedisEndpoint: Sendable, Equatable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case unix(path: String)

    /// The text written in logs and error lines.
    public var description: String {
        switch self {
        case .tcp(let host, let port): "\(host):\(port)"
        case .unix(let path): "unix:\(path)"
        }
    }
}
