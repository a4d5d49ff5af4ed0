import CounterCore
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// The production ``CounterStore``: one worker's Redis connection, with the reconnect policy.
///
/// A request never waits for Redis to come back. When the connection fails, the request gets
/// ``CounterError/unavailable(reason:)`` (503) at once, the context is dropped, and the next
/// attempt is allowed only after a capped exponential backoff with jitter; requests in between
/// fail fast. The cap (500 ms) keeps recovery under a second once Redis answers again.
final class RedisCounterStore: CounterStore {
    private let config: Config
    private var logger: Logger
    private var connection: RedisConnection?
    private var failures = 0
    private var nextAttempt: UInt64 = 0
    private var wasConnected = false
    private var lastUsed: UInt64 = 0

    /// A connection idle this long is checked for a server-side close before it is used; a busy
    /// one is not (saves a poll(2) per request under load, where a broken connection shows at once).
    static let idleCheckNS: UInt64 = 100_000_000

    private let get: RedisCommand
    private let incr: RedisCommand
    private let setZero: RedisCommand
    private let pingCommand: RedisCommand

    static let backoffBaseNS: UInt64 = 25_000_000
    static let backoffCapNS: UInt64 = 500_000_000

    init(config: Config, logger: Logger) {
        self.config = config
        self.logger = logger
        get = RedisCommand(["GET", config.counterKey])
        incr = RedisCommand(["INCR", config.counterKey])
        setZero = RedisCommand(["SET", config.counterKey, "0"])
        pingCommand = RedisCommand(["PING"])
    }

    /// Connects ahead of the first request; failure is only logged (the service starts anyway).
    func warmUp() {
        _ = try? connected()
    }

    func read() throws(CounterError) -> Int64 {
        switch try execute(get, idempotent: true) {
        case .null:
            return 0
        case .string(let bytes):
            guard let value = CounterValue.parse(bytes) else {
                logger.error("counter value is not an integer", metadata: ["redis.key": "\(config.counterKey)"])
                throw .corruptValue
            }
            return value
        case let other:
            throw classify(other, command: "GET")
        }
    }

    func increment() throws(CounterError) -> Int64 {
        switch try execute(incr, idempotent: false) {
        case .integer(let value):
            return value
        case .error(let message) where message.contains("overflow"):
            throw .overflow
        case .error(let message) where message.contains("not an integer"):
            logger.error("counter value is not an integer", metadata: ["redis.key": "\(config.counterKey)"])
            throw .corruptValue
        case let other:
            throw classify(other, command: "INCR")
        }
    }

    func reset() throws(CounterError) {
        switch try execute(setZero, idempotent: true) {
        case .status: return
        case let other: throw classify(other, command: "SET")
        }
    }

    func ping() throws(CounterError) {
        switch try execute(pingCommand, idempotent: true) {
        case .status: return
        case let other: throw classify(other, command: "PING")
        }
    }

    /// Runs `command` on a healthy connection. An idempotent command whose connection broke is
    /// retried once on a fresh one; INCR never is, since it may have been applied before the
    /// connection broke and a retry could count twice.
    private func execute(_ command: RedisCommand, idempotent: Bool) throws(CounterError) -> RedisReply {
        var attempts = idempotent ? 2 : 1
        while true {
            let current = try connected()
            do {
                return try current.run(command)
            } catch {
                attempts -= 1
                disconnect(reason: error)
                if attempts == 0 { throw .unavailable(reason: "\(error)") }
            }
        }
    }

    /// The live connection, reconnecting if the backoff allows it.
    private func connected() throws(CounterError) -> RedisConnection {
        let now = RedisCounterStore.monotonicNow()
        defer { lastUsed = now }
        if let connection {
            if now - lastUsed < RedisCounterStore.idleCheckNS || !connection.isStale { return connection }
            disconnect(reason: .io("server closed the connection"), countsAsFailure: false)
        }
        guard now >= nextAttempt else { throw .unavailable(reason: "reconnect backoff") }
        do {
            let fresh = try RedisConnection.connect(to: config)
            connection = fresh
            if failures > 0 || !wasConnected {
                logger.info("redis connected", metadata: ["redis": "\(config.redis)", "redis.failed_attempts": "\(failures)"])
            }
            failures = 0
            wasConnected = true
            return fresh
        } catch {
            failures += 1
            scheduleRetry(after: now)
            let metadata: Logger.Metadata = ["redis": "\(config.redis)", "redis.error": "\(error)", "redis.failed_attempts": "\(failures)"]
            if case .handshake = error {
                logger.error("redis refused the handshake", metadata: metadata)
            } else if failures == 1 {
                logger.warning("redis connect failed", metadata: metadata)
            } else {
                logger.debug("redis connect failed", metadata: metadata)
            }
            throw .unavailable(reason: "\(error)")
        }
    }

    private func disconnect(reason: RedisError, countsAsFailure: Bool = true) {
        guard connection != nil else { return }
        connection = nil
        logger.warning("redis disconnected", metadata: ["redis": "\(config.redis)", "redis.error": "\(reason)"])
        if countsAsFailure {
            failures += 1
            scheduleRetry(after: RedisCounterStore.monotonicNow())
        }
    }

    /// Full jitter over the upper half: the delay is between half and all of the capped
    /// exponential step, so workers that failed together do not retry together.
    private func scheduleRetry(after now: UInt64) {
        // The first retry after a working connection broke is immediate: Redis may just have
        // restarted, and waiting would turn one blip into a burst of 503s.
        if failures <= 1 { nextAttempt = now; return }
        let shift = UInt64(min(failures - 2, 20))
        let step = min(RedisCounterStore.backoffCapNS, RedisCounterStore.backoffBaseNS << shift)
        nextAttempt = now + step / 2 + UInt64.random(in: 0...(step / 2))
    }

    private func classify(_ reply: RedisReply, command: String) -> CounterError {
        if case .error(let message) = reply {
            // Transient server states: loading the AOF, out of memory under noeviction, a replica
            // that is read-only after failover, a cluster going down. Clients should retry.
            for prefix in ["LOADING", "BUSY", "OOM", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "NOPERM"]
            where message.hasPrefix(prefix) {
                logger.warning("redis refused a command", metadata: ["redis.command": "\(command)", "redis.error": "\(message)"])
                return .unavailable(reason: message)
            }
            if message.hasPrefix("NOAUTH") {
                // Redis restarted with a password: a new connection will authenticate again.
                connection = nil
                return .unavailable(reason: message)
            }
            if message.hasPrefix("WRONGTYPE") {
                logger.error("counter key holds a non-string value", metadata: ["redis.key": "\(config.counterKey)"])
                return .corruptValue
            }
            logger.error("redis error reply", metadata: ["redis.command": "\(command)", "redis.error": "\(message)"])
            return .unexpected(message: message)
        }
        logger.error("unexpected redis reply", metadata: ["redis.command": "\(command)", "redis.reply": "\(reply)"])
        return .unexpected(message: "\(reply)")
    }

    static func monotonicNow() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }
}
