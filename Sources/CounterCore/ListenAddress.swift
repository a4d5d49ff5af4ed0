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

    public var description: String {
        switch self {
        case .unix(let path): "unix:\(path)"
        case .tcp(let host, let port): "tcp:" + hostPortText(host, port)
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

/// Where counter-fcgi receives nginx's edge log: a UDP port on a loopback address, numeric
/// (`127.0.0.1:9146` or `[::1]:9146`). Loopback only: the datagrams carry no credentials, so
/// they must come from this host (in Kubernetes, this pod: nginx shares its network namespace).
public struct EdgeLogAddress: Sendable, Equatable, CustomStringConvertible {
    public let host: String
    public let port: Int

    public init(parsing text: String) throws(ConfigError.Reason) {
        let (host, port) = try splitHostPort(Substring(text), example: "127.0.0.1:9146")
        guard EdgeLogAddress.isLoopback(host) else {
            throw .init("host must be a numeric loopback address (127.x.x.x or [::1]): the datagrams are not authenticated")
        }
        self.host = host
        self.port = port
    }

    /// 127.0.0.0/8 written as four decimal octets, or ::1.
    static func isLoopback(_ host: String) -> Bool {
        if host == "::1" { return true }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4, octets[0] == "127" else { return false }
        return octets.allSatisfy { octet in
            !octet.isEmpty && octet.count <= 3 && octet.allSatisfy(\.isASCII) && octet.allSatisfy(\.isNumber) && Int(octet)! <= 255
        }
    }

    public var description: String { hostPortText(host, port) }
}

/// `host:port` or `[v6-host]:port`, split; the host without brackets, the port 1 to 65535.
func splitHostPort(_ text: Substring, example: String) throws(ConfigError.Reason) -> (String, Int) {
    guard let colon = text.lastIndex(of: ":") else { throw .init("needs host:port, e.g. \(example)") }
    var host = String(text[..<colon])
    if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    guard !host.isEmpty else { throw .init("needs a host, e.g. \(example)") }
    let port = try Config.parseInteger(String(text[text.index(after: colon)...]), in: 1...65535, what: "port")
    return (host, port)
}

/// The inverse of ``splitHostPort(_:example:)``: brackets around an IPv6 host.
func hostPortText(_ host: String, _ port: Int) -> String {
    host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
}
