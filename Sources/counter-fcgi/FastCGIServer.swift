import CounterCore
import CounterRedis
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The FastCGI responder: N worker threads accepting on one socket, each with its own
/// `FCGX_Request` and its own Redis connection, as in libfcgi's threaded example.
///
/// Start order: listening socket, edge log receiver, worker requests, worker threads. Shutdown
/// (``run()`` returns after SIGTERM/SIGINT) goes in reverse, each step a `defer` beside the step
/// it undoes: the socket stops taking connections, the workers answer every connection already
/// queued on it and close their Redis connections, they are joined (bounded by
/// `SHUTDOWN_TIMEOUT_MS`), the edge log thread is joined, and the socket is closed and removed.
final class FastCGIServer: Sendable {
    private let config: Config
    private let logger: Logger
    private let router: Router
    private let stopping = Atomic<Bool>(false)
    /// Set when the server cannot go on (the listening socket could not be watched again): the
    /// process stops as on SIGTERM, then exits 1 so that its supervisor starts a new one.
    private let fatal = Mutex<String?>(nil)
    private let busy = Atomic<Int>(0)
    private let metrics: ServiceMetrics
    /// Shared by the workers' Redis sessions: the first good answer after an outage ends every backoff.
    private let recovery = RedisRecovery()

    init(config: Config, logger: Logger) {
        self.config = config
        self.logger = logger
        let metrics = ServiceMetrics(threads: config.threads)
        self.metrics = metrics
        self.router = Router(exposition: { metrics.response() })
    }

    func run() throws(ServerError) {
        try FastCGIRequest.initializeLibrary()
        // After libfcgi's set-up, which installs its own handlers, and before any thread exists.
        Signals.prepare()

        // Runs last, after every other step below has been undone.
        var signalled = false
        defer { if signalled { logger.info("counter-fcgi stopped") } }
        let socket = try ListenSocket.open(config.listen, backlog: config.backlog, ioTimeoutMS: config.ioTimeoutMS)
        defer { socket.close() }
        let edgeLog = try config.edgeLogAddress.map { (address) throws(ServerError) in
            try EdgeLogReceiver(address: address, logger: logger)
        }
        defer { edgeLog?.stop(logger: logger) }
        // Every worker's FastCGI request is made here, so a failure stops the start with one line
        // instead of leaving a worker that silently never serves.
        let poller = try ConnectionPoller(listenFD: socket.fd)
        var requests: [FastCGIRequest] = []
        let unixSocket = if case .unix = socket.address { true } else { false }
        for _ in 0..<config.threads {
            requests.append(try FastCGIRequest(unixSocket: unixSocket))
        }

        var workers: [WorkerThread] = []
        defer { stopWorkers(workers, socket: socket, poller: poller) }
        for (id, request) in requests.enumerated() {
            workers.append(try WorkerThread { [self] in
                serve(workerID: id, request: request, socket: socket, poller: poller)
            })
        }
        requests.removeAll()  // each is now its worker's alone
        logger.info("counter-fcgi started", metadata: config.logSummary.mapValues { .string($0) })

        let signal = Signals.waitForTermination()
        signalled = true
        logger.info("shutting down", metadata: ["signal": "\(signal)", "requests.in_flight": "\(busy.load(ordering: .relaxed))"])
        if let reason = fatal.withLock({ $0 }) { throw ServerError(description: reason) }
    }

    /// Stops the server because it cannot go on: logged, then the same stop as SIGTERM (the main
    /// thread takes the signal), and exit status 1.
    private func failHard(_ reason: String, logger: Logger) {
        let first = fatal.withLock { current in
            defer { if current == nil { current = reason } }
            return current == nil
        }
        guard first else { return }
        logger.critical("stopping: the server cannot go on", metadata: ["error": "\(reason)"])
        kill(getpid(), SIGTERM)
    }

    /// Stops accepting and waits for the workers to answer what they hold and what is queued.
    /// A worker still busy at the deadline may be inside libfcgi or hiredis, where nothing can
    /// interrupt it: the process then ends at once rather than free what that worker uses.
    private func stopWorkers(_ workers: [WorkerThread], socket: ListenSocket, poller: ConnectionPoller) {
        stopping.store(true, ordering: .sequentiallyConsistent)
        socket.stopAccepting()
        poller.stop()
        let deadline = MonotonicClock.now() + UInt64(config.shutdownTimeoutMS) * 1_000_000
        let running = WorkerThread.join(workers, before: deadline)
        guard running == 0 else {
            logger.warning("shutdown timed out", metadata: [
                "workers.unfinished": "\(running)", "shutdown_timeout_ms": "\(config.shutdownTimeoutMS)",
            ])
            socket.removePath()
            _exit(1)
        }
    }

    /// One worker: wait for a socket with something to read (``ConnectionPoller``), answer the
    /// request on it, hand a kept connection back to the poller, until the stop. Then it answers
    /// what comes before nginx learns of the stop: every connection still queued on the listening
    /// socket (accept(2) hands them out after ``ListenSocket/stopAccepting()``) and the requests
    /// on kept connections, closing each connection after its response.
    private func serve(workerID: Int, request: FastCGIRequest, socket: ListenSocket, poller: ConnectionPoller) {
        var logger = self.logger
        logger[metadataKey: "worker.id"] = "\(workerID)"
        let store = RedisCounterStore(config: config, logger: logger, metrics: metrics.redis, recovery: recovery)
        store.warmUp()
        var output: [UInt8] = []
        output.reserveCapacity(512)
        var requestMetrics = RequestMetrics()

        func answer(_ connection: Int32, registered: Bool) {
            guard request.begin(on: connection) else { return }  // closed by nginx, or not a request
            busy.add(1, ordering: .relaxed)
            metrics.busyWorkers.increment()
            let kept = handle(request, keep: !stopping.load(ordering: .relaxed), store: store, output: &output,
                              metrics: &requestMetrics, logger: logger)
            metrics.busyWorkers.decrement()
            busy.subtract(1, ordering: .relaxed)
            if let kept, !poller.keep(kept, registered: registered) {
                _ = close(kept)
            }
        }

        serving: while true {
            switch poller.next() {
            case .listener:
                let accepted = socket.acceptConnection()
                if !rearm(poller, logger: logger) {
                    failHard("cannot watch the listening socket again: \(lastError())", logger: logger)
                }
                switch accepted {
                case .connection(let connection):
                    metrics.connectionsAccepted.increment()
                    answer(connection, registered: false)
                case .none:
                    break
                case .failed(let reason):
                    // EMFILE and the like: say so and pause instead of spinning on the error.
                    logger.error("accept failed", metadata: ["error": "\(reason)"])
                    usleep(100_000)
                }
            case .connection(let connection):
                answer(connection, registered: true)
            case .stop:
                break serving
            case nil:
                // Not expected (the set outlives the workers): say so rather than spin on it.
                logger.error("waiting for connections failed", metadata: ["error": "\(lastError())"])
                usleep(100_000)
            }
        }
        // Stopping. Connections still queued on the listening socket are answered and closed.
        while case .connection(let connection) = socket.acceptConnection() {
            metrics.connectionsAccepted.increment()
            answer(connection, registered: false)
        }
        // Kept connections: each request that comes on one is answered and its connection closed
        // right after the response, so nginx drops it rather than send on it again, and opens a new
        // one, which is refused (a clean 502, nothing half sent). Once no request came for
        // `quietMS`, nginx is not using the connections still open: they close with the process.
        // Bounded by half the shutdown timeout. (The stop stays ready in the epoll set, so this
        // looks without waiting and sleeps briefly between looks.)
        let quietMS: UInt64 = 100
        let deadline = MonotonicClock.now() + UInt64(config.shutdownTimeoutMS / 2) * 1_000_000
        var lastRequest = MonotonicClock.now()
        while MonotonicClock.now() - lastRequest < quietMS * 1_000_000, MonotonicClock.now() < deadline {
            let ready = poller.readyConnections()
            if ready.isEmpty {
                usleep(2_000)
                continue
            }
            for connection in ready { answer(connection, registered: true) }
            lastRequest = MonotonicClock.now()
        }
    }

    /// Arms the listening socket again, trying a few times over 50 ms (epoll_ctl fails only for
    /// want of kernel memory here); false if it never took. Each refusal is counted.
    private func rearm(_ poller: ConnectionPoller, logger: Logger) -> Bool {
        for attempt in 0..<5 {
            if poller.rearmListener() { return true }
            metrics.listenerRearmFailures.increment()
            logger.error("cannot watch the listening socket again", metadata: ["error": "\(lastError())", "attempt": "\(attempt + 1)"])
            usleep(10_000)
        }
        return false
    }

    /// Answers the request `request` has begun; returns the connection if it is kept (``FastCGIRequest/finish(keep:)``).
    private func handle(_ request: FastCGIRequest, keep: Bool, store: RedisCounterStore, output: inout [UInt8],
                        metrics requestMetrics: inout RequestMetrics, logger: Logger) -> Int32? {
        let debug = logger.logLevel <= .debug
        let started = MonotonicClock.now()
        let head = request.head()
        // Copied now: libfcgi frees the params at finish(keep:).
        let requestID = debug ? request.requestID() : nil
        // Always, body or not: after the end of stdin a connection can be kept, or closed at once.
        // Only a named counter's PUT keeps its body (the original routes take none, and their
        // requests are neither copied nor changed for it).
        let keepsBody = head.named != nil && head.method == "PUT"
        request.drainBody(keep: keepsBody)
        let routed: Routed
        if keepsBody {
            var withBody = head
            withBody.named = head.named?.with(body: request.body)
            routed = router.route(withBody, store: store)
        } else {
            routed = router.route(head, store: store)
        }
        let response = routed.response
        response.serialize(into: &output, includeBody: head.method != "HEAD")
        let delivered = request.write(output)
        let kept = request.finish(keep: keep)
        let elapsed = MonotonicClock.now() - started
        requestMetrics.record(routed.endpoint, status: response.status.code, nanoseconds: elapsed)
        if routed.replayed { metrics.idempotentReplays.increment() }
        if debug {
            let micros = elapsed / 1000
            logger.debug("request", metadata: [
                "request.id": "\(requestID ?? "-")",
                "http.method": "\(head.method)",
                "http.path": "\(head.path)",
                "http.status": "\(response.status.code)",
                "duration_us": "\(micros)",
                "delivered": "\(delivered)",
            ])
        }
        return kept
    }
}
