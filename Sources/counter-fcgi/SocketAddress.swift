#if canImport(Glibc)
import Glibc
#endif

/// A socket address ready for bind(2) or connect(2): a unix socket path, or the first address
/// getaddrinfo(3) gives for a host and port. The one place that resolves and lays out addresses,
/// for the FastCGI listener, the edge log receiver and the probe.
struct SocketAddress {
    /// AF_UNIX, AF_INET or AF_INET6: what socket(2) must be asked for.
    let family: Int32
    private var storage = sockaddr_storage()
    private let length: socklen_t

    /// A unix socket path (its length was checked by the configuration: at most 107 bytes).
    init(unixPath path: String) {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path.utf8.prefix($0.count - 1)) }
        withUnsafeMutableBytes(of: &storage) { target in
            withUnsafeBytes(of: address) { target.copyMemory(from: $0) }
        }
        family = AF_UNIX
        length = socklen_t(MemoryLayout<sockaddr_un>.size)
    }

    /// The first address of `host` and `port` for sockets of `type` (SOCK_STREAM, SOCK_DGRAM).
    /// `numericHost`: the host must be an address, never a name to look up; `passive`: for bind(2).
    init(host: String, port: Int, type: Int32, numericHost: Bool = false, passive: Bool = false) throws(ServerError) {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = type
        hints.ai_flags = AI_NUMERICSERV | (numericHost ? AI_NUMERICHOST : 0) | (passive ? AI_PASSIVE : 0)
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &result)
        guard status == 0, let first = result else {
            throw ServerError(description: "cannot resolve \(host): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(result) }
        family = first.pointee.ai_family
        length = first.pointee.ai_addrlen
        let bytes = UnsafeRawBufferPointer(start: first.pointee.ai_addr, count: Int(length))
        withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: bytes) }
    }

    /// Calls `body` with the address as the system calls take it.
    func withSockaddr<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
        withUnsafePointer(to: storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }
}
