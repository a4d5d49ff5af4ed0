import CounterCore
import Logging

/// One worker's connection to the Redis primary, kept alive: connects where the endpoint source
/// says (the fixed address, or the primary Sentinel names), checks it, drops it after any error,
/// and allows the next attempt only when the ``ReconnectPolicy`` does. A request never waits for
/// Redis to come back: between attempts it gets 503 at once.
final class RedisSession {
    private let config: Config
    private let logger: Logger
    private let metrics: RedisMetrics
    private let source: RedisEndpointSource
    private let recovery: RedisRecovery
    private let policy = ReconnectPolicy()
    private var connection: RedisConnection? {
        didSet {
            // The gauge of workers with a live Redis connection follows every change.
            if oldValue == nil, connection != nil { metrics.connectedWorkers.increment() }
            if oldValue != nil, connection == nil { metrics.connectedWorkers.decrement() }
        }
    }
    private var failures = 0
    private var nextAttempt: UInt64 = 0
    private var lastFailure: UInt64 = 0
    /// The connection in hand has not had a command answered yet: its first answer is news.
    private var unproven = false
    private var wasConnected = false
    private var lastUsed: UInt64 = 0
    /// The connection in hand replaces one Redis closed while idle: not a reconnect to count.
    private var quietReplacement = false
    /// Where the connection in hand goes (for logs and the primary gauge).
    private(set) var endpoint: RedisEndpoint
    /// Set while the last connect failed on a setting (a refused handshake): requests in the
    /// backoff that follows get the same configuration error, not a 503 that invites retries.
    private var misconfiguration: (reason: String, log: Logger.Metadata)?
    /// One "redis configuration error" line per worker every 10 s: such errors repeat on every
    /// request until an operator acts.
    private var configErrorLog = LogThrottle(intervalNS: 10_000_000_000)

    /// A connection idle this long is checked for a server-side close before it is used; a busy
    /// one is not (saves a poll(2) per request under load, where a broken connection shows at once).
    static let idleCheckNS: UInt64 = 100_000_000

    /// A session to the Redis the settings name: the fixed address, or Sentinel's primary; or,
    /// with `node`, to that cluster node.
    init(config: Config, logger: Logger, metrics: RedisMetrics, recovery: RedisRecovery, node: HostPort? = nil) {
        self.config = config
        self.logger = logger
        self.metrics = metrics
        self.recovery = recovery
        if let node {
            endpoint = .tcp(host: node.host, port: node.port)
            source = RedisEndpointSource(config: config, node: endpoint)
        } else {
            endpoint = config.redis
            source = RedisEndpointSource(config: config)
        }
    }

    deinit {
        connection = nil  // keeps the connected-workers gauge right when a worker stops
    }

    /// True when the primary is found through Sentinel (error replies then mean a failover more often).
    var followsSentinel: Bool { source.followsSentinel }

    /// The live connection, reconnecting if the backoff allows it.
    func connected() throws(CounterError) -> RedisConnection {
        let now = MonotonicClock.now()
        defer { lastUsed = now }
        if let connection {
            if now - lastUsed < RedisSession.idleCheckNS || !connection.isStale { return connection }
            // Closed while idle: Redis's own `timeout`, or a restart. Normal, so it is replaced
            // quietly: no error counted, no warning, no backoff; a failure to reconnect still
            // shows as one below.
            self.connection = nil
            quietReplacement = true
            logger.debug("redis closed an idle connection", metadata: ["redis": "\(endpoint)"])
        }
        // Only reached without a connection in hand: the shared read is off the steady path.
        guard policy.allowsAttempt(now: now, nextAttempt: nextAttempt, lastFailure: lastFailure,
                                   recoveredAt: recovery.recoveredAt) else {
            if let misconfiguration {
                reportConfigurationError(metadata: misconfiguration.log)
                throw .misconfigured(reason: misconfiguration.reason)
            }
            throw .unavailable(reason: "reconnect backoff")
        }
        do {
            let target = try source.endpoint()
            let fresh = try RedisConnection.connect(to: .init(config: config, endpoint: target))
            try source.verify(fresh, at: target)
            connection = fresh
            endpoint = target
            unproven = true
            if source.followsSentinel {
                switch metrics.notePrimary(target.description) {
                case .same: break
                case .first: logger.info("redis primary", metadata: ["redis.primary": "\(target)"])
                case .changed(let old):
                    logger.warning("redis primary changed", metadata: ["redis.primary": "\(target)", "redis.previous_primary": "\(old)"])
                }
            }
            if wasConnected, !quietReplacement { metrics.reconnects.increment() }
            quietReplacement = false
            if failures > 0 || !wasConnected {
                logger.info("redis connected", metadata: ["redis": "\(target)", "redis.failed_attempts": "\(failures)"])
            }
            failures = 0
            misconfiguration = nil
            wasConnected = true
            return fresh
        } catch {
            quietReplacement = false
            failures += 1
            lastFailure = now
            nextAttempt = policy.nextAttempt(failures: failures, now: now, jitter: Double.random(in: 0...1))
            let metadata: Logger.Metadata = ["redis": "\(source.followsSentinel ? "sentinel" : "\(endpoint)")",
                                             "redis.error": "\(error)", "redis.failed_attempts": "\(failures)"]
            if case .handshake(let step, let reply) = error, RedisErrorReply(handshakeReply: reply) == .misconfigured {
                // A wrong password, a missing permission, a database Redis lacks: retrying cannot
                // help, so it is a configuration error (500, no Retry-After), logged at most every
                // 10 s. Connects are still retried with backoff: the fix may be on Redis's side.
                let reason = "\(step) refused: \(reply)"
                let details: Logger.Metadata = ["redis.command": "\(step)", "redis.error": "\(reply)", "redis": metadata["redis"] ?? "-"]
                misconfiguration = (reason, details)
                reportConfigurationError(metadata: details)
                throw .misconfigured(reason: reason)
            }
            misconfiguration = nil
            if case .handshake = error { metrics.error("handshake") } else { metrics.error("connect") }
            if failures == 1 {
                logger.warning("redis connect failed", metadata: metadata)
            } else {
                logger.debug("redis connect failed", metadata: metadata)
            }
            throw .unavailable(reason: "\(error)")
        }
    }

    /// Drops the connection after an error (counted, logged, backed off); the next use reconnects,
    /// through Sentinel when it is followed.
    func disconnect(reason: RedisError) {
        guard connection != nil else { return }
        connection = nil
        metrics.error("io")
        logger.warning("redis disconnected", metadata: ["redis": "\(endpoint)", "redis.error": "\(reason)"])
        failures += 1
        lastFailure = MonotonicClock.now()
        nextAttempt = policy.nextAttempt(failures: failures, now: lastFailure, jitter: Double.random(in: 0...1))
    }

    /// Counts a configuration error (`counter_redis_errors_total{kind="config"}`) and logs it at
    /// most once per worker every 10 s, with how many were not logged in between.
    func reportConfigurationError(metadata: Logger.Metadata) {
        metrics.error("config")
        guard let held = configErrorLog.admit(now: MonotonicClock.now()) else { return }
        var details = metadata
        details["redis.errors_not_logged"] = "\(held)"
        logger.error("redis configuration error", metadata: details)
    }

    /// Called when Redis answered a command as it should (not with an error): on a new
    /// connection, that is news for the workers still backing off.
    func answered() {
        guard unproven else { return }
        unproven = false
        recovery.record(MonotonicClock.now())
    }
}
