/// A TCP address of a Redis server or Sentinel, `host:port` (IPv6 in brackets).
public struct HostPort: Sendable, Hashable, CustomStringConvertible {
    /// The host: a name or a numeric address, without brackets.
    public let host: String
    /// The port, 1 to 65535.
    public let port: Int

    /// An address from its parts.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses the setting's text; the error says what is wrong.
    public init(parsing text: String) throws(ConfigError.Reason) {
        (host, port) = try splitHostPort(Substring(text), example: "10.0.0.5:26379")
    }

    /// `host:port`, with brackets around an IPv6 host.
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
