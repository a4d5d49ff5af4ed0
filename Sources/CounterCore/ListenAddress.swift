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
            let (host, port) = try splitHostPort(text.dropFirst(4), example: "tcp:127.0.0.1:9000")
            self = .tcp(host: host, port: port)
        } else {
            throw .init("must be unix:/path or tcp:host:port")
        }
    }

    /// The text written in logs and error lines.
    public var description: String {
        switch self {
        case .unix(let path): "unix:\(path)"
        case .tcp(let host, let port): "tcp:" + hostPortText(host, port)
        }
    }
}
