import CounterCore
import CounterRedis
#if canImport(Glibc)
import Glibc
#endif

/// The socket side of `counter-fcgi probe`: connects to the responder's socket, sends one
/// FastCGI request (``FastCGIProbe``) and reads the answer, all within one deadline. A hung
/// responder still lets the kernel queue the connection and buffer the request, so only the
/// answer proves the process serves: the deadline is what a hung process fails.
enum ProbeClient {
    static func ask(_ address: ListenAddress, path: String, timeoutMS: Int) throws(ServerError) -> FastCGIResponseReader.Answer {
        let deadline = MonotonicClock.now() + UInt64(timeoutMS) * 1_000_000
        let fd = try connect(address, deadline: deadline)
        defer { _ = close(fd) }

        let request = FastCGIProbe.request(path: path)
        var sent = 0
        while sent < request.count {
            try wait(fd, for: Int16(POLLOUT), until: deadline, doing: "sending the request")
            let count = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                throw ServerError(description: "cannot send to \(address): \(lastError())")
            }
            sent += count
        }

        var reader = FastCGIResponseReader()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            try wait(fd, for: Int16(POLLIN), until: deadline, doing: "waiting for the answer")
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                throw ServerError(description: "cannot read from \(address): \(lastError())")
            }
            if count == 0 { break }
            do {
                try reader.feed(buffer[..<count])
            } catch {
                throw ServerError(description: "not a FastCGI answer from \(address): \(error)")
            }
            if let answer = reader.answer { return answer }
        }
        throw ServerError(description: "\(address) closed the connection before answering")
    }

    /// A non-blocking socket connected to `address` before `deadline`.
    private static func connect(_ address: ListenAddress, deadline: UInt64) throws(ServerError) -> Int32 {
        let target: SocketAddress
        switch address {
        case .unix(let path): target = SocketAddress(unixPath: path)
        case .tcp(let host, let port): target = try SocketAddress(host: host, port: port, type: Int32(SOCK_STREAM.rawValue))
        }
        let fd = socket(target.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw ServerError(description: "cannot create a socket: \(lastError())") }
        let status = target.withSockaddr { Glibc.connect(fd, $0, $1) }
        if status != 0 {
            let reason = errno
            guard reason == EINPROGRESS || reason == EAGAIN else {
                _ = close(fd)
                throw ServerError(description: "cannot connect to \(address): \(String(cString: strerror(reason)))")
            }
            do {
                try wait(fd, for: Int16(POLLOUT), until: deadline, doing: "connecting")
            } catch {
                _ = close(fd)
                throw error
            }
            var error: Int32 = 0
            var size = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size)
            guard error == 0 else {
                _ = close(fd)
                throw ServerError(description: "cannot connect to \(address): \(String(cString: strerror(error)))")
            }
        }
        return fd
    }

    private static func wait(_ fd: Int32, for events: Int16, until deadline: UInt64, doing what: String) throws(ServerError) {
        while true {
            let now = MonotonicClock.now()
            guard now < deadline else { throw ServerError(description: "no answer in time (\(what))") }
            var entry = pollfd(fd: fd, events: events, revents: 0)
            let ready = poll(&entry, 1, Int32((deadline - now + 999_999) / 1_000_000))
            if ready > 0 { return }
            if ready < 0, errno != EINTR { throw ServerError(description: "poll failed: \(lastError())") }
        }
    }
}
