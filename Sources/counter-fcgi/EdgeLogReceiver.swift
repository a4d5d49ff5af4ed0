import CounterCore
import CounterRedis
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
/// so the edge counts come out beside the responder's own. One thread, blocked in recv(2); it
/// never touches a FastCGI worker.
///
/// Why UDP on loopback and not a unix datagram socket in the shared socket folder: the kernel
/// queues at most `net.unix.max_dgram_qlen` (10) datagrams on a unix socket, and nginx, which
/// sends without blocking, lost some of a 40-request burst that way in our tests. A UDP socket
/// queues up to its receive buffer (we ask for 4 MiB; the kernel caps it at `net.core.rmem_max`),
/// and counts what it still has to drop, which we export as `counter_edge_log_dropped_total`.
final class EdgeLogReceiver {
    private let socket: EdgeLogSocket
    private let thread: WorkerThread

    /// Binds the UDP socket and starts the receiving thread.
    init(address: EdgeLogAddress, logger: Logger) throws(ServerError) {
        let socket = try EdgeLogSocket(address: address, logger: logger)
        logger.info("edge log receiving", metadata: [
            "edge_log.address": "udp:\(address)", "edge_log.receive_buffer_bytes": "\(socket.receiveBufferBytes())",
        ])
        do {
            thread = try WorkerThread { socket.receive() }
        } catch {
            socket.close()
            throw error
        }
        self.socket = socket
    }

    /// Stops the thread, waits for it (it wakes from recv(2) at least every 200 ms), then closes
    /// the socket: never closed under a thread still reading it. The wait is bounded (1 s): should
    /// the thread not come back, the socket is left to the process's exit rather than closed under it.
    func stop(logger: Logger) {
        socket.stopping.store(true, ordering: .relaxed)
        guard WorkerThread.join([thread], before: MonotonicClock.now() + 1_000_000_000) == 0 else {
            logger.warning("edge log receiver did not stop in time")
            return
        }
        socket.close()
    }
}

/// The edge log's UDP socket and the loop that reads it, shared by the receiving thread and the
/// thread that stops it (hence immutable, with an atomic stop flag).
private final class EdgeLogSocket: Sendable {
    private let fd: Int32
    private let logger: Logger
    let stopping = Atomic<Bool>(false)

    /// Binds the UDP socket.
    init(address: EdgeLogAddress, logger: Logger) throws(ServerError) {
        self.logger = logger
        let resolved = try SocketAddress(host: address.host, port: address.port, type: Int32(SOCK_DGRAM.rawValue), numericHost: true)
        let fd = socket(resolved.family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ServerError(description: "cannot create the edge log socket: \(lastError())") }
        guard resolved.withSockaddr({ bind(fd, $0, $1) }) == 0 else {
            let reason = lastError()
            _ = Glibc.close(fd)
            throw ServerError(description: "cannot bind edge log address udp:\(address): \(reason)")
        }
        // A larger buffer only means fewer drops (counted either way): a refusal is not fatal.
        var bufferBytes: Int32 = 4 << 20
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufferBytes, socklen_t(MemoryLayout<Int32>.size))
        // recv(2) wakes at least this often to notice the stop; without it the stop would wait on
        // a datagram that may never come, so a refusal stops the start.
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        guard setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size)) == 0 else {
            let reason = lastError()
            _ = Glibc.close(fd)
            throw ServerError(description: "cannot set the edge log socket's receive timeout: \(reason)")
        }
        self.fd = fd
    }

    func close() {
        _ = Glibc.close(fd)
    }

    func receive() {
        var counters = EdgeCounters()
        let invalid = Counter(label: "counter_edge_log_invalid_total")
        let dropped = Counter(label: "counter_edge_log_dropped_total")
        var droppedSoFar: UInt32 = 0
        var sinceDropCheck = 0
        // One byte more than a valid line may have, so an overlong datagram shows as one.
        var buffer = [UInt8](repeating: 0, count: EdgeLogLine.maxDatagramBytes + 1)
        // After a datagram, the queue is drained without blocking; once it is empty the thread
        // naps for 2 ms before blocking again. Under a flood of refusals it then wakes a few
        // hundred times a second instead of once per datagram; the receive buffer holds far
        // more than a nap's worth of lines.
        var flags: Int32 = 0
        while !stopping.load(ordering: .relaxed) {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, flags) }
            // The kernel's drop count, whenever the queue is empty and every 256 datagrams:
            // cheap, and current enough for a counter scraped every few seconds.
            sinceDropCheck += 1
            if count < 0 || sinceDropCheck >= 256 {
                sinceDropCheck = 0
                if let drops = kernelDrops(), drops != droppedSoFar {
                    dropped.increment(by: Int64(drops &- droppedSoFar))  // cumulative, wraps at 2^32
                    droppedSoFar = drops
                }
            }
            if count < 0 {
                let error = errno
                if error == EAGAIN || error == EWOULDBLOCK {
                    if flags != 0 {
                        flags = 0
                        usleep(2_000)
                    }
                    continue
                }
                if error == EINTR { continue }
                logger.error("edge log receive failed", metadata: ["error": "\(String(cString: strerror(error)))"])
                usleep(100_000)
                continue
            }
            flags = Int32(MSG_DONTWAIT)
            if let line = EdgeLogLine(datagram: buffer[..<count]) {
                counters.record(line)
            } else {
                invalid.increment()
                logger.debug("edge log line not understood", metadata: ["bytes": "\(count)"])
            }
        }
    }

    /// How many datagrams the kernel has dropped on this socket since it was made: SO_MEMINFO's
    /// SK_MEMINFO_DROPS (linux/sock_diag.h, index 8; not visible to Swift). SO_RXQ_OVFL would
    /// say the same per message, but the kernel never reports it for UDP.
    private func kernelDrops() -> UInt32? {
        var info = [UInt32](repeating: 0, count: 9)
        var length = socklen_t(info.count * MemoryLayout<UInt32>.size)
        let status = info.withUnsafeMutableBytes { getsockopt(fd, SOL_SOCKET, SO_MEMINFO, $0.baseAddress, &length) }
        guard status == 0, length >= socklen_t(9 * MemoryLayout<UInt32>.size) else { return nil }
        return info[8]
    }

    /// The receive buffer the kernel granted, in bytes (it doubles what was asked, within rmem_max).
    func receiveBufferBytes() -> Int {
        var bytes: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, &length)
        return Int(bytes)
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
