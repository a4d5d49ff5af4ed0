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
    private let logger: Logger
    private let metrics: ServiceMetrics
    private var connection: RedisConnection? {
        didSet {
            // The gauge of workers with a live Redis connection follows every change.
            if oldValue == nil, connection != nil { metrics.redisConnectedWorkers.increment() }
            if oldValue != nil, connection == nil { metrics.redisConnectedWorkers.decrement() }
        }
    }
    private var failures = 0
    private var nextAttempt: UInt64 = 0
    private var wasConnected = false
    private var lastUsed: UInt64 = 0
    /// The connection in hand replaces one Redis closed while idle: not a reconnect to count.
    private var quietReplacement = false
    private var lastConfigErrorLog: UInt64 = 0
    private var configErrorsNotLogged = 0
    static let configErrorLogIntervalNS: UInt64 = 10_000_000_000

    /// A connection idle this long is checked for a server-side close before it is used; a busy
    /// one is not (saves a poll(2) per request under load, where a broken connection shows at once).
    static let idleCheckNS: UInt64 = 100_000_000

    private let get: RedisCommand
    private let incr: RedisCommand
    private let setZero: RedisCommand
    private let pingCommand: RedisCommand

    static let backoffBaseNS: UInt64 = 25_000_000
    static let backoffCapNS: UInt64 = 500_000_000

    init(config: Config, logger: Logger, metrics: ServiceMetrics) {
        self.config = config
        self.logger = logger
        self.metrics = metrics
        get = RedisCommand(["GET", config.counterKey])
        incr = RedisCommand(["INCR", config.counterKey])
        setZero = RedisCommand(["SET", config.counterKey, "0"])
        pingCommand = RedisCommand(["PING"])
    }

    deinit {
        connection = nil  // keeps the connected-workers gauge right when a worker stops
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

    func increment(idempotency: IdempotencyKey?, now: Timestamp) throws(CounterError) -> WriteOutcome {
        if let idempotency { return try idempotentWrite(.increment, idempotency, now: now) }
        switch try execute(incr, idempotent: false) {
        case .integer(let value):
            return WriteOutcome(value: value, replayed: false, timestamp: now)
        case let other:
            throw classify(other, command: "INCR")
        }
    }

    func reset(idempotency: IdempotencyKey?, now: Timestamp) throws(CounterError) -> WriteOutcome {
        if let idempotency { return try idempotentWrite(.reset, idempotency, now: now) }
        switch try execute(setZero, idempotent: true) {
        case .status: return WriteOutcome(value: 0, replayed: false, timestamp: now)
        case let other: throw classify(other, command: "SET")
        }
    }

    /// A write with an idempotency key: one Lua script checks for the key's first outcome and, if
    /// there is none, does the write and records its outcome with the retention TTL. Being one
    /// script it is atomic, so two requests with one key are never both applied (the second sees
    /// the first's record), and it is safe to retry on a fresh connection.
    private func idempotentWrite(_ operation: WriteOperation, _ key: IdempotencyKey, now: Timestamp) throws(CounterError) -> WriteOutcome {
        for attempt in 0..<2 {
            let sha = try scriptSHA()
            let command = RedisCommand(["EVALSHA", sha, "2", config.counterKey, key.storageKey(counterKey: config.counterKey),
                                        operation.rawValue, String(config.idempotencyTTLSeconds),
                                        now.text])
            switch try execute(command, idempotent: true) {
            case .array(let items) where items.count == 2:
                guard case .integer(let replayed) = items[0], case .string(let record) = items[1],
                      let (firstOperation, outcome) = WriteOutcome.parse(record: String(decoding: record, as: UTF8.self)) else { break }
                guard firstOperation == operation else { throw .idempotencyKeyReused(firstUsedFor: firstOperation) }
                return WriteOutcome(value: outcome.value, replayed: replayed == 1, timestamp: outcome.timestamp)
            case .error(let message) where message.hasPrefix("NOSCRIPT") && attempt == 0:
                loadedSHA = nil  // the script cache was flushed: load it again, once
                continue
            case let other:
                throw classify(other, command: "EVALSHA")
            }
            throw classify(.error("malformed idempotency record"), command: "EVALSHA")
        }
        throw .unavailable(reason: "script cache flushed twice")
    }

    /// The write-once script. KEYS: counter, record. ARGV: operation, TTL seconds, timestamp.
    /// Returns {1, record} for a replay, {0, record} for a new write; the record is
    /// "operation:value:timestamp". A failing INCR (not an integer, overflow) aborts it unrecorded.
    static let writeOnceScript = """
        local record = redis.call('GET', KEYS[2])
        if record then return {1, record} end
        local value = '0'
        if ARGV[1] == 'increment' then
          redis.call('INCR', KEYS[1])
          -- Read the value back as a string: Lua numbers are doubles, exact only up to 2^53.
          value = redis.call('GET', KEYS[1])
        else
          redis.call('SET', KEYS[1], '0')
        end
        record = ARGV[1] .. ':' .. value .. ':' .. ARGV[3]
        redis.call('SET', KEYS[2], record, 'EX', tonumber(ARGV[2]))
        return {0, record}
        """

    private var loadedSHA: String?

    private func scriptSHA() throws(CounterError) -> String {
        if let loadedSHA { return loadedSHA }
        switch try execute(RedisCommand(["SCRIPT", "LOAD", RedisCounterStore.writeOnceScript]), idempotent: true) {
        case .string(let bytes):
            let sha = String(decoding: bytes, as: UTF8.self)
            loadedSHA = sha
            return sha
        case let other:
            throw classify(other, command: "SCRIPT LOAD")
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
        let now = MonotonicClock.now()
        defer { lastUsed = now }
        if let connection {
            if now - lastUsed < RedisCounterStore.idleCheckNS || !connection.isStale { return connection }
            // Closed while idle: Redis's own `timeout`, or a restart. Normal, so it is replaced
            // quietly: no error counted, no warning, no backoff; a failure to reconnect still
            // shows as one below.
            self.connection = nil
            quietReplacement = true
            logger.debug("redis closed an idle connection", metadata: ["redis": "\(config.redis)"])
        }
        guard now >= nextAttempt else { throw .unavailable(reason: "reconnect backoff") }
        do {
            let fresh = try RedisConnection.connect(to: config)
            connection = fresh
            if wasConnected, !quietReplacement { metrics.redisReconnects.increment() }
            quietReplacement = false
            if failures > 0 || !wasConnected {
                logger.info("redis connected", metadata: ["redis": "\(config.redis)", "redis.failed_attempts": "\(failures)"])
            }
            failures = 0
            wasConnected = true
            return fresh
        } catch {
            quietReplacement = false
            failures += 1
            scheduleRetry(after: now)
            if case .handshake = error { metrics.redisError("handshake") } else { metrics.redisError("connect") }
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

    private func disconnect(reason: RedisError) {
        guard connection != nil else { return }
        connection = nil
        metrics.redisError("io")
        logger.warning("redis disconnected", metadata: ["redis": "\(config.redis)", "redis.error": "\(reason)"])
        failures += 1
        scheduleRetry(after: MonotonicClock.now())
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

    /// Turns a reply that is not the expected one into the API's error, acting on what it means
    /// (``RedisErrorReply`` decides that from the text): log, count, and drop the connection
    /// when it cannot be used again.
    private func classify(_ reply: RedisReply, command: String) -> CounterError {
        guard case .error(let message) = reply else {
            metrics.redisError("reply")
            logger.error("unexpected redis reply", metadata: ["redis.command": "\(command)", "redis.reply": "\(reply)"])
            return .unexpected(message: "\(reply)")
        }
        let metadata: Logger.Metadata = ["redis.command": "\(command)", "redis.error": "\(message)"]
        switch RedisErrorReply(message: message, authenticates: config.redisPassword != nil) {
        case .overflow:
            return .overflow
        case .corruptValue:
            metrics.redisError("reply")
            logger.error("counter value is not a 64-bit integer", metadata: ["redis.key": "\(config.counterKey)", "redis.error": "\(message)"])
            return .corruptValue
        case .transient:
            metrics.redisError("reply")
            logger.warning("redis refused a command", metadata: metadata)
            return .unavailable(reason: message)
        case .reconnect:
            // Counted, logged and backed off like any broken connection.
            disconnect(reason: .io(message))
            return .unavailable(reason: message)
        case .misconfigured:
            metrics.redisError("config")
            // Every request fails the same way until an operator acts: one line per worker every
            // 10 s says so without flooding the log; the metric counts each one.
            let now = MonotonicClock.now()
            if lastConfigErrorLog == 0 || now - lastConfigErrorLog >= RedisCounterStore.configErrorLogIntervalNS {
                var details = metadata
                details["redis.errors_not_logged"] = "\(configErrorsNotLogged)"
                logger.error("redis configuration error", metadata: details)
                lastConfigErrorLog = now
                configErrorsNotLogged = 0
            } else {
                configErrorsNotLogged += 1
            }
            return .misconfigured(reason: message)
        case .unexpected:
            metrics.redisError("reply")
            logger.error("redis error reply", metadata: metadata)
            return .unexpected(message: message)
        }
    }
}
