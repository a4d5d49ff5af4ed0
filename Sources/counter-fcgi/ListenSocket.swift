import CounterCore
#if canImport(Glibc)
import Glibc
#endif

/// The listening socket for FastCGI connections, made by us rather than `FCGX_OpenSocket`: that
/// call unlinks whatever is at the path (even a live instance's socket), creates it with the
/// umask's mode, and binds TCP to every interface. Here a unix socket is created with mode 0660
/// from the start, a stale one is replaced but a live one is refused, and TCP binds the host given.
struct ListenSocket: Sendable {
    let fd: Int32
    let address: ListenAddress
    /// SO_RCVTIMEO and SO_SNDTIMEO of every accepted connection (`FCGI_IO_TIMEOUT_MS`).
    private let ioTimeout: timeval
    /// The unix socket's device and inode once bound: the path is removed only while it is still
    /// ours (a newer instance may have replaced it while this one was stopping).
    private var identity: (dev: UInt, ino: UInt)?

    static func open(_ address: ListenAddress, backlog: Int, ioTimeoutMS: Int) throws(ServerError) -> ListenSocket {
        let fd: Int32
        switch address {
        case .unix(let path):
            fd = try openUnix(path)
        case .tcp(let host, let port):
            fd = try openTCP(host: host, port: port)
        }
        guard listen(fd, Int32(backlog)) == 0 else {
            let reason = lastError()
            _ = Glibc.close(fd)
            throw ServerError(description: "cannot listen on \(address): \(reason)")
        }
        let timeout = timeval(tv_sec: ioTimeoutMS / 1000, tv_usec: (ioTimeoutMS % 1000) * 1000)
        var socket = ListenSocket(fd: fd, address: address, ioTimeout: timeout)
        if case .unix(let path) = address { socket.identity = identity(of: path) }
        return socket
    }

    private init(fd: Int32, address: ListenAddress, ioTimeout: timeval) {
        self.fd = fd
        self.address = address
        self.ioTimeout = ioTimeout
    }

    /// Non-blocking: the workers learn from ``ConnectionPoller`` that a connection waits, and
    /// several may try for it; the losers get EAGAIN instead of blocking.
    private static let kind = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)

    /// What one accept(2) gave.
    enum Accepted {
        /// A new connection: blocking, as libfcgi reads and writes it, with both directions bounded
        /// by the I/O timeout (a read or write that stalls fails, and the request with it).
        case connection(Int32)
        /// None is queued (EAGAIN), or the socket stopped accepting and none is left (EINVAL).
        case none
        /// Accepting failed otherwise (EMFILE, ENOBUFS...): worth a log line and a pause.
        case failed(String)
    }

    /// Takes one queued connection, without waiting.
    func acceptConnection() -> Accepted {
        while true {
            let connection = accept(fd, nil, nil)
            if connection >= 0 {
                var timeout = ioTimeout
                let size = socklen_t(MemoryLayout<timeval>.size)
                guard setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, size) == 0,
                      setsockopt(connection, SOL_SOCKET, SO_SNDTIMEO, &timeout, size) == 0 else {
                    let reason = lastError()
                    _ = Glibc.close(connection)
                    return .failed("cannot bound a connection's reads and writes: \(reason)")
                }
                return .connection(connection)
            }
            switch errno {
            case EINTR, ECONNABORTED: continue  // interrupted, or the client left first: try the next
            case EAGAIN, EWOULDBLOCK, EINVAL: return .none
            default: return .failed(lastError())
            }
        }
    }

    /// Stops new connections from queueing; those already queued can still be accepted (Linux
    /// hands them out, then fails with EINVAL), and connections already accepted are not affected.
    func stopAccepting() {
        shutdown(fd, Int32(SHUT_RDWR))
    }

    /// Closes the socket and removes its path.
    func close() {
        _ = Glibc.close(fd)
        removePath()
    }

    /// Removes the unix socket's path if it is still this socket, so nginx's next connect fails
    /// at once (a 502) instead of queueing for a process that is gone.
    func removePath() {
        guard case .unix(let path) = address, let identity,
              let current = ListenSocket.identity(of: path), current == identity else { return }
        unlink(path)
    }

    private static func identity(of path: String) -> (dev: UInt, ino: UInt)? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return (UInt(info.st_dev), UInt(info.st_ino))
    }

    private static func openUnix(_ path: String) throws(ServerError) -> Int32 {
        var info = stat()
        if lstat(path, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFSOCK else {
                throw ServerError(description: "\(path) exists and is not a socket; refusing to replace it")
            }
            if isLive(path) {
                throw ServerError(description: "another process is serving on \(path)")
            }
            unlink(path)  // left behind by a process that was killed
        }
        let fd = socket(AF_UNIX, ListenSocket.kind, 0)
        guard fd >= 0 else { throw ServerError(description: "cannot create a unix socket: \(lastError())") }
        // The mode is set through the umask so the socket never exists with a wider one:
        // owner and group (nginx's) may connect, nobody else.
        let oldMask = umask(0o117)
        let bound = SocketAddress(unixPath: path).withSockaddr { bind(fd, $0, $1) }
        umask(oldMask)
        guard bound == 0 else {
            let reason = lastError()
            _ = Glibc.close(fd)
            throw ServerError(description: "cannot bind \(path): \(reason)")
        }
        chmod(path, 0o660)
        return fd
    }

    private static func isLive(_ path: String) -> Bool {
        let probe = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard probe >= 0 else { return false }
        defer { _ = Glibc.close(probe) }
        return SocketAddress(unixPath: path).withSockaddr { connect(probe, $0, $1) } == 0
    }

    private static func openTCP(host: String, port: Int) throws(ServerError) -> Int32 {
        let address = try SocketAddress(host: host, port: port, type: Int32(SOCK_STREAM.rawValue), passive: true)
        let fd = socket(address.family, ListenSocket.kind, 0)
        guard fd >= 0 else { throw ServerError(description: "cannot create a TCP socket: \(lastError())") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard address.withSockaddr({ bind(fd, $0, $1) }) == 0 else {
            let reason = lastError()
            _ = Glibc.close(fd)
            throw ServerError(description: "cannot bind tcp:\(host):\(port): \(reason)")
        }
        return fd
    }
}
