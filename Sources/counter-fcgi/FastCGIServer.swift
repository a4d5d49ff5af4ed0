private import CFastCGI
import CounterCore
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The FastCGI responder: N worker threads accepting on one socket, each with its own
/// `FCGX_Request` and its own Redis connection, as in libfcgi's threaded example.
///
/// Shutdown (``run()`` returns after SIGTERM/SIGINT): stop accepting, let the requests in hand
/// finish (bounded by `SHUTDOWN_TIMEOUT_MS`), close each worker's Redis connection, remove the
/// socket.
final class FastCGIServer {
    private let config: Config
    private let logger: Logger
    private let router: Router
    private let stopping = Atomic<Bool>(false)
    private let busy = Atomic<Int>(0)
    private let finished = Atomic<Int>(0)
    private let metrics: ServiceMetrics

    init(config: Config, logger: Logger) {
        self.config = config
        self.logger = logger
        self.router = Router()
        self.metrics = ServiceMetrics(threads: config.threads)
    }

    func run() throws(ServerError) {
        guard FCGX_Init() == 0 else { throw ServerError(description: "FCGX_Init failed") }
        // After FCGX_Init, which installs libfcgi's own handlers, and before any thread exists.
        Signals.prepare()

        let socket = try ListenSocket.open(config.listen, backlog: config.backlog)
        var edgeLog: EdgeLogReceiver?
        if let address = config.edgeLogAddress {
            do {
                edgeLog = try EdgeLogReceiver(address: address, logger: logger)
                try edgeLog?.start()
            } catch {
                edgeLog?.stop()
                socket.close()
                throw error
            }
        }
        logger.info("counter-fcgi started", metadata: config.logSummary.mapValues { .string($0) })

        var workers: [WorkerThread] = []
        for id in 0..<config.threads {
            do {
                workers.append(try WorkerThread { [self] in
                    serve(workerID: id, listenFD: socket.fd)
                    finished.add(1, ordering: .releasing)
                })
            } catch {
                // Let the workers already started leave their accept loop before giving up.
                stopping.store(true, ordering: .sequentiallyConsistent)
                socket.stopAccepting()
                socket.close()
                edgeLog?.stop()
                throw error
            }
        }

        let signal = Signals.waitForTermination()
        logger.info("shutting down", metadata: ["signal": "\(signal)", "requests.in_flight": "\(busy.load(ordering: .relaxed))"])
        stopping.store(true, ordering: .sequentiallyConsistent)
        FCGX_ShutdownPending()
        socket.stopAccepting()

        // Each worker counts itself out after finishing its request and closing Redis.
        let deadline = RedisCounterStore.monotonicNow() + UInt64(config.shutdownTimeoutMS) * 1_000_000
        while finished.load(ordering: .acquiring) < workers.count, RedisCounterStore.monotonicNow() < deadline {
            usleep(5_000)
        }
        let unfinished = workers.count - finished.load(ordering: .acquiring)
        socket.close()
        edgeLog?.stop()
        if unfinished > 0 {
            logger.warning("shutdown timed out", metadata: ["workers.unfinished": "\(unfinished)"])
        }
        logger.info("counter-fcgi stopped")
    }

    /// One worker: accept, answer, finish, until shutdown. Its store (and Redis connection) and
    /// its FastCGI request are its own and die with it.
    private func serve(workerID: Int, listenFD: Int32) {
        var logger = self.logger
        logger[metadataKey: "worker.id"] = "\(workerID)"
        let store = RedisCounterStore(config: config, logger: logger, metrics: metrics)
        store.warmUp()
        guard let request = FastCGIRequest(listenFD: listenFD) else {
            logger.error("FCGX_InitRequest failed")
            return
        }
        var output: [UInt8] = []
        output.reserveCapacity(512)
        var requestMetrics = RequestMetrics()

        while true {
            let status = request.accept()
            if stopping.load(ordering: .relaxed) { break }
            guard status >= 0 else {
                // EMFILE and the like: say so and pause instead of spinning on the error.
                logger.error("accept failed", metadata: ["fcgi.status": "\(status)"])
                usleep(100_000)
                continue
            }
            busy.add(1, ordering: .relaxed)
            metrics.busyWorkers.increment()
            handle(request, store: store, output: &output, metrics: &requestMetrics, logger: logger)
            metrics.busyWorkers.decrement()
            busy.subtract(1, ordering: .relaxed)
        }
        request.finish()
    }

    private func handle(_ request: FastCGIRequest, store: RedisCounterStore, output: inout [UInt8],
                        metrics requestMetrics: inout RequestMetrics, logger: Logger) {
        let debug = logger.logLevel <= .debug
        let started = RedisCounterStore.monotonicNow()
        let head = request.head()
        // Copied now: libfcgi frees the params at finish().
        let requestID = debug ? request.requestID() : nil
        if let length = head.contentLength, !length.isEmpty, length != "0" {
            request.drainBody()
        }
        // /metrics is not part of the API: only nginx's internal metrics server routes it here.
        let response = head.path == "/metrics" && head.method == "GET"
            ? metrics.response()
            : router.respond(to: head, store: store)
        response.serialize(into: &output, includeBody: head.method != "HEAD")
        let delivered = request.write(output)
        request.finish()
        let elapsed = RedisCounterStore.monotonicNow() - started
        requestMetrics.record(path: head.path, status: response.status.code, nanoseconds: elapsed)
        if !response.headers.isEmpty, response.header("Idempotent-Replayed") != nil {
            metrics.idempotentReplays.increment()
        }
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
    }
}
