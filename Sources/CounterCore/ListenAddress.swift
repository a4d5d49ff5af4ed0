/// Where counter-fcgi accepts FastCGI connections: `unix:/path` (the default, and the only form
/// nginx should use inside a pod) or `tcp:host:port` (loopback tests, split deployments).
public enum ListenAddress: Sendable, Equatable, CustomStringConvertible {
    case unix(path: String)
    case tcp(host: String, port: Int)

    /// The longest unix socket path the kernel takes (`sun_path` is 108 bytes with its NUL).
    public static let maxUnixPathBytes = 107

    /// Parses `unix:/path`, `tcp:127.0.0.1:9000` or `tcp:[::1]:9000`; the error says what is wrong.
    public init(parsing text: String) throws(ConfigError.Reason) {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard !path.isEmpty else { throw .init("unix: needs a socket path, e.g. unix:/run/counter-fcgi/counter-fcgi.sock") }
            guard path.utf8.count <= ListenAddress.maxUnixPathBytes else {
                throw .init("socket path is longer than \(ListenAddress.maxUnixPathBytes) bytes")
            }
            self = .unix(path: path)
        } else if text.hasPrefix("tcp:") {
            let rest = text.dropFirst(4)
            guard let colon = rest.lastIndex(of: ":") else { throw .init("tcp: needs host:port, e.g. tcp:127.0.0.1:9000") }
            var host = String(rest[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            guard !host.isEmpty else { throw .init("tcp: needs a host, e.g. tcp:127.0.0.1:9000") }
            let port = try Config.parseInteger(String(rest[rest.index(after: colon)...]), in: 1...65535, what: "port")
            self = .tcp(host: host, port: port)
        } else {
            throw .init("must be unix:/path or tcp:host:port")
        }
    }

    public var description: String {
        switch self {
        case .unix(let path): "unix:\(path)"
        case .tcp(let host, let port): host.contains(":") ? "tcp:[\(host)]:\(port)" : "tcp:\(host):\(port)"
        }
    }
}

/// Where Redis is: TCP by default; a `REDIS_HOST` that starts with `/` is a unix socket path
/// (Redis beside the responder, e.g. in tests).
public enum RedisEndpoint: Sendable, Equatable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case unix(path: String)

    public var description: String {
        switch self {
        case .tcp(let host, let port): "\(host):\(port)"
        case .unix(let path): "unix:\(path)"
        }
    }
}
