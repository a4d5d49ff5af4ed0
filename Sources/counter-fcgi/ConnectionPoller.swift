private import CEpoll
#if canImport(Glibc)
import Glibc
#endif

/// What the workers wait on: a new connection on the listening socket, the next request on a kept
/// connection, or the stop. One epoll set shared by every worker. Each ready socket is handed to
/// one worker (`EPOLLONESHOT`), which arms it again when it is done with it: a connection is never
/// served by two threads at once, and no thread is bound to a connection between its requests.
///
/// That last point is why this exists. libfcgi's own accept binds a kept connection (nginx's
/// `fastcgi_keep_conn`) to the thread that accepted it, which then blocks reading it while other
/// connections queue unanswered; with more kept connections than threads, requests stalled for
/// seconds (docs/DESIGN.md). Here a kept connection between requests is just an armed entry in this
/// set, and libfcgi only parses and writes the requests (``FastCGIRequest``).
///
/// The one owner of the epoll and eventfd descriptors; `Sendable` because it holds only them, and
/// epoll and eventfd are safe to use from many threads at once.
final class ConnectionPoller: Sendable {
    enum Event {
        /// The listening socket has a connection to accept; arm it again after accepting.
        case listener
        /// A kept connection has its next request (or was closed by the web server).
        case connection(Int32)
        /// ``stop()`` was called: every wait returns this from now on.
        case stop
    }

    private let epollFD: Int32
    private let stopFD: Int32
    private let listenFD: Int32

    init(listenFD: Int32) throws(ServerError) {
        let epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epollFD >= 0 else { throw ServerError(description: "cannot create an epoll set: \(lastError())") }
        let stopFD = eventfd(0, Int32(EFD_CLOEXEC) | Int32(EFD_NONBLOCK))
        guard stopFD >= 0 else {
            let reason = lastError()
            close(epollFD)
            throw ServerError(description: "cannot create an eventfd: \(reason)")
        }
        // The stop stays readable once written (never read, level-triggered): every worker sees it.
        guard Self.control(epollFD, EPOLL_CTL_ADD, stopFD, oneShot: false),
              Self.control(epollFD, EPOLL_CTL_ADD, listenFD, oneShot: true) else {
            let reason = lastError()
            close(stopFD)
            close(epollFD)
            throw ServerError(description: "cannot watch the listening socket: \(reason)")
        }
        self.epollFD = epollFD
        self.stopFD = stopFD
        self.listenFD = listenFD
    }

    deinit {
        close(stopFD)
        close(epollFD)
    }

    /// Blocks until something is ready and returns it; nil if epoll_wait failed (not EINTR,
    /// which is retried): the reason is then in `errno`.
    func next() -> Event? {
        var event = epoll_event()
        while true {
            let count = epoll_wait(epollFD, &event, 1, -1)
            if count > 0 { return classify(event) }
            if count < 0, errno != EINTR { return nil }
        }
    }

    /// The kept connections that are ready now, without waiting: what a stopping worker must still
    /// answer (a request nginx already sent). Each returned connection is the caller's to serve.
    func readyConnections() -> [Int32] {
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        let count = epoll_wait(epollFD, &events, Int32(events.count), 0)
        guard count > 0 else { return [] }
        return events.prefix(Int(count)).compactMap { event in
            if case .connection(let fd) = classify(event) { return fd }
            return nil
        }
    }

    /// Arms the listening socket again after a worker took its event and accepted. False if epoll
    /// refused (the reason is in `errno`): until it is armed again no worker hears of a new
    /// connection, so the caller must not carry on as if it were.
    func rearmListener() -> Bool {
        Self.control(epollFD, EPOLL_CTL_MOD, listenFD, oneShot: true)
    }

    /// Watches `fd` for its next request; `registered` when it came from this set (``Event/connection(_:)``),
    /// not straight from accept. False if epoll refused it: the caller then closes it.
    func keep(_ fd: Int32, registered: Bool) -> Bool {
        Self.control(epollFD, registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, oneShot: true)
    }

    /// Wakes every worker with ``Event/stop``, now and in every later wait.
    func stop() {
        var one: UInt64 = 1
        _ = write(stopFD, &one, MemoryLayout<UInt64>.size)
    }

    private func classify(_ event: epoll_event) -> Event {
        let fd = event.data.fd
        if fd == stopFD { return .stop }
        if fd == listenFD { return .listener }
        return .connection(fd)
    }

    private static func control(_ epollFD: Int32, _ operation: Int32, _ fd: Int32, oneShot: Bool) -> Bool {
        var event = epoll_event()
        // RDHUP: a kept connection that nginx closes is reported too, and then closed by us.
        event.events = EPOLLIN.rawValue | EPOLLRDHUP.rawValue | (oneShot ? EPOLLONESHOT.rawValue : 0)
        event.data.fd = fd
        return epoll_ctl(epollFD, operation, fd, &event) == 0
    }
}
