import CounterCore
import Logging
import Metrics
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Counts the requests nginx answers without counter-fcgi, from the syslog datagrams nginx sends
/// to `EDGE_LOG_ADDRESS` (see ``EdgeLogLine``), into `counter_edge_requests_total{route,status}`.
///
/// Why here: those requests (the rate limits' 429s above all) never reach the responder, and
/// nginx's stub_status has no status codes. Our metrics endpoint is the pod's one scrape target,
/// so the edge counts come out beside the responder's own. One thread, blocked in recvmsg(2); it
/// never touches a FastCGI worker.
///
/// Why UDP on loopback and not a unix datagram socket in the shared socket folder: the kernel
/// queues at most `net.unix.max_dgram_qlen` (10) datagrams on a unix socket, and nginx, which
/// sends without blocking, lost some of a 40-request burst that way in our tests. A UDP socket
/// queues up to its receive buffer (we ask for 4 MiB; the kernel caps it at `net.core.rmem_max`),
/// and the kernel counts what it still has to drop: `counter_edge_log_dropped_total`.
final class EdgeLogReceiver {
    private let address: EdgeLogAddress
    private let fd: Int32
    private let logger: Logger
    private let stopping = Atomic<Bool>(false)
    private let stopped = Atomic<Bool>(false)

    /// Binds the UDP socket.
    init(address: EdgeLogAddress, logger: Logger) throws(ServerError) {
        self.address = address
        self.logger = logger
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(address.host, String(address.port), &hints, &result) == 0, let first = result else {
            throw ServerError(description: "cannot use edge log address \(address)")
        }
        defer { freeaddrinfo(result) }
        let fd = socket(first.pointee.ai_family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ServerError(description: "cannot create the edge log socket: \(lastError())") }
        guard bind(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            let reason = lastError()
            _ = Glibc.close(fd)
            throw ServerError(description: "cannot bind edge log address udp:\(address): \(reason)")
        }
        var bufferBytes: Int32 = 4 << 20
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufferBytes, socklen_t(MemoryLayout<Int32>.size))
        // Ask the kernel to report, with each datagram, how many it has dropped on this socket.
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, socklen_t(MemoryLayout<Int32>.size))
        // recvmsg(2) wakes at least this often to notice shutdown.
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        self.fd = fd
    }

    /// Starts the receiving thread.
    func start() throws(ServerError) {
        _ = try WorkerThread { [self] in
            receive()
            stopped.store(true, ordering: .releasing)
        }
    }

    /// Stops the thread (within the receive timeout), then closes the socket.
    func stop() {
        stopping.store(true, ordering: .relaxed)
        for _ in 0..<100 where !stopped.load(ordering: .acquiring) {
            usleep(5_000)
        }
        _ = Glibc.close(fd)
    }

    private func receive() {
        var counters = EdgeCounters()
        let invalid = Counter(label: "counter_edge_log_invalid_total")
        let dropped = Counter(label: "counter_edge_log_dropped_total")
        var droppedSoFar: UInt32 = 0
        // One byte more than a valid line may have, so an overlong datagram shows as one.
        var buffer = [UInt8](repeating: 0, count: EdgeLogLine.maxDatagramBytes + 1)
        // Room for one control message carrying a UInt32 (SO_RXQ_OVFL), with alignment to spare.
        var control = [UInt8](repeating: 0, count: 64)
        while !stopping.load(ordering: .relaxed) {
            var drops: UInt32?
            let count = buffer.withUnsafeMutableBytes { data in
                control.withUnsafeMutableBytes { controlBytes in
                    var vector = iovec(iov_base: data.baseAddress, iov_len: data.count)
                    return withUnsafeMutablePointer(to: &vector) { vectorPointer in
                        var message = msghdr()
                        message.msg_iov = vectorPointer
                        message.msg_iovlen = 1
                        message.msg_control = controlBytes.baseAddress
                        message.msg_controllen = controlBytes.count
                        let received = recvmsg(fd, &message, 0)
                        if received >= 0 { drops = EdgeLogReceiver.dropCount(message, control: UnsafeRawBufferPointer(controlBytes)) }
                        return received
                    }
                }
            }
            if count < 0 {
                let error = errno
                if error == EAGAIN || error == EWOULDBLOCK || error == EINTR { continue }
                logger.error("edge log receive failed", metadata: ["error": "\(String(cString: strerror(error)))"])
                usleep(100_000)
                continue
            }
            if let drops, drops != droppedSoFar {
                // The kernel's count is cumulative (and wraps at 2^32).
                dropped.increment(by: Int64(drops &- droppedSoFar))
                droppedSoFar = drops
            }
            if let line = EdgeLogLine(datagram: buffer[..<count]) {
                counters.record(line)
            } else {
                invalid.increment()
                logger.debug("edge log line not understood", metadata: ["bytes": "\(count)"])
            }
        }
    }

    /// The SO_RXQ_OVFL count in a received message's control data, if the kernel sent one. The
    /// CMSG_* macros do not reach Swift; with one control message, it starts the buffer and its
    /// data follows the aligned header.
    private static func dropCount(_ message: msghdr, control: UnsafeRawBufferPointer) -> UInt32? {
        let headerSize = MemoryLayout<cmsghdr>.stride
        guard message.msg_controllen >= headerSize + MemoryLayout<UInt32>.size else { return nil }
        let header = control.loadUnaligned(as: cmsghdr.self)
        guard header.cmsg_level == SOL_SOCKET, header.cmsg_type == SO_RXQ_OVFL,
              header.cmsg_len >= headerSize + MemoryLayout<UInt32>.size else { return nil }
        return control.loadUnaligned(fromByteOffset: headerSize, as: UInt32.self)
    }
}

/// The edge counters, created on first use and kept (one per route and status).
private struct EdgeCounters {
    private var counters: [String: [Int: Counter]] = [:]

    mutating func record(_ line: EdgeLogLine) {
        if let counter = counters[line.route]?[line.status] {
            counter.increment()
            return
        }
        let counter = Counter(label: "counter_edge_requests_total",
                              dimensions: [("route", line.route), ("status", String(line.status))])
        counters[line.route, default: [:]][line.status] = counter
        counter.increment()
    }
}
