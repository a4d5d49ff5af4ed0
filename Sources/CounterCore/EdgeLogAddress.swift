/// Where counter-fcgi receives nginx's edge log: a UDP port on a loopback address, numeric
/// (`127.0.0.1:9146` or `[::1]:9146`). Loopback only: the datagrams carry no credentials, so
/// they must come from this host (in Kubernetes, this pod: nginx shares its network namespace).
public struct EdgeLogAddress: Sendable, Equatable, CustomStringConvertible {
    /// The host: a name or a numeric address, without brackets.
    public let host: String
    /// The port, 1 to 65535.
    public let port: Int

    /// Parses the setting's text; the error says what is wrong.
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

    /// `host:port`, with brackets around an IPv6 host.
    public var description: String { hostPortText(host, port) }
}
