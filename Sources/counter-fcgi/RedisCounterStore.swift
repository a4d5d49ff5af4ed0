import CounterCore
import Logging

/// The production ``CounterStore``: the counter operations as Redis commands on one worker's
/// ``RedisSession``, and what Redis's answers mean for the API.
///
/// Writes: a plain `/write` is one `INCR`, never retried after a connection failure (it may have
/// been applied); with an `Idempotency-Key` it is one Lua script, safe to retry. With
/// `REDIS_WAIT_REPLICAS=N` every write goes out with `WAIT N timeout` in the same round trip and is
/// answered 200 only when N replicas acknowledged it; fewer is a 503 (the outcome is unknown: a
/// retry with the same Idempotency-Key is safe).
final class RedisCounterStore: CounterStore {
    private let config: Config
    private let logger: Logger
    private let metrics: ServiceMetrics
    private let session: RedisSession

    private let get: RedisCommand
    private let incr: RedisCommand
    private let setZero: RedisCommand
    private let pingCommand: RedisCommand
    private let wait: RedisCommand?

    init(config: Config, logger: Logger, metrics: ServiceMetrics, recovery: RedisRecovery) {
        self.config = config
        self.logger = logger
        self.metrics = metrics
        session = RedisSession(config: config, logger: logger, metrics: metrics, recovery: recovery)
        get = RedisCommand(["GET", config.counterKey])
        incr = RedisCommand(["INCR", config.counterKey])
        setZero = RedisCommand(["SET", config.counterKey, "0"])
        pingCommand = RedisCommand(["PING"])
        wait = config.waitReplicas > 0
            ? RedisCommand(["WAIT", String(config.waitReplicas), String(config.waitTimeoutMS)]) : nil
    }

    /// Connects ahead of the first request; failure is only logged (the service starts anyway).
    func warmUp() {
        _ = try? session.connected()
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
        switch try execute(incr, idempotent: false, write: true) {
        case .integer(let value):
            return WriteOutcome(value: value, replayed: false, timestamp: now)
        case let other:
            throw classify(other, command: "INCR")
        }
    }

    func reset(idempotency: IdempotencyKey?, now: Timestamp) throws(CounterError) -> WriteOutcome {
        if let idempotency { return try idempotentWrite(.reset, idempotency, now: now) }
        switch try execute(setZero, idempotent: true, write: true) {
        case .status: return WriteOutcome(value: 0, replayed: false, timestamp: now)
        case let other: throw classify(other, command: "SET")
        }
    }

    /// A write with an idempotency key: one Lua script (``IdempotencyRecord/writeOnceScript``)
    /// checks for the key's first outcome and, if there is none, does the write and records its
    /// outcome with the retention TTL. Being one script it is atomic, so two requests with one key
    /// are never both applied (the second sees the first's record), and it is safe to retry on a
    /// fresh connection.
    private func idempotentWrite(_ operation: WriteOperation, _ key: IdempotencyKey, now: Timestamp) throws(CounterError) -> WriteOutcome {
        let (replayed, record) = try writeOnce(.original, [config.counterKey, key.storageKey(counterKey: config.counterKey), operation.rawValue,
                                                            String(config.idempotencyTTLSeconds), now.text])
        guard let (firstOperation, outcome) = IdempotencyRecord.parse(record) else {
            throw classify(.error("malformed idempotency record"), command: "EVALSHA")
        }
        guard firstOperation == operation else { throw .idempotencyKeyReused(firstUsedFor: firstOperation) }
        return WriteOutcome(value: outcome.value, replayed: replayed, timestamp: outcome.timestamp)
    }

    /// The two write-once scripts: the default counter's and the named counters'.
    private enum WriteScript {
        case original, named

        var source: String {
            switch self {
            case .original: IdempotencyRecord.writeOnceScript
            case .named: NamedRecord.writeOnceScript
            }
        }
    }

    /// Each script's SHA1 once loaded into the current server; nil until then, or after NOSCRIPT.
    private var loadedSHAs: (original: String?, named: String?) = (nil, nil)

    /// Runs a write-once script with two keys and `arguments` (its KEYS then ARGV) and returns
    /// its answer: whether it replayed a record, and the record. The script is loaded once per
    /// server; if Redis lost it (a restart, `SCRIPT FLUSH`: NOSCRIPT, nothing ran) it is loaded
    /// again and the call repeated once.
    private func writeOnce(_ script: WriteScript, _ arguments: [String]) throws(CounterError) -> (replayed: Bool, record: String) {
        var reply = try execute(RedisCommand(["EVALSHA", try sha(of: script), "2"] + arguments), idempotent: true, write: true)
        if case .error(let message) = reply, message.hasPrefix("NOSCRIPT") {
            switch script {
            case .original: loadedSHAs.original = nil
            case .named: loadedSHAs.named = nil
            }
            reply = try execute(RedisCommand(["EVALSHA", try sha(of: script), "2"] + arguments), idempotent: true, write: true)
        }
        guard case .array(let items) = reply else { throw classify(reply, command: "EVALSHA") }
        guard items.count == 2, case .integer(let replayed) = items[0], case .string(let record) = items[1] else {
            throw classify(.error("malformed idempotency record"), command: "EVALSHA")
        }
        return (replayed == 1, String(decoding: record, as: UTF8.self))
    }

    private func sha(of script: WriteScript) throws(CounterError) -> String {
        switch script {
        case .original: if let sha = loadedSHAs.original { return sha }
        case .named: if let sha = loadedSHAs.named { return sha }
        }
        let sha = try load(script.source)
        switch script {
        case .original: loadedSHAs.original = sha
        case .named: loadedSHAs.named = sha
        }
        return sha
    }

    /// Loads `script` into the server (SCRIPT LOAD) and returns its SHA1.
    private func load(_ script: String) throws(CounterError) -> String {
        switch try execute(RedisCommand(["SCRIPT", "LOAD", script]), idempotent: true) {
        case .string(let bytes): return String(decoding: bytes, as: UTF8.self)
        case let other: throw classify(other, command: "SCRIPT LOAD")
        }
    }

    // MARK: Named counters

    /// The bytes of the last per-request command, kept for its capacity.
    private var commandBuffer: [UInt8] = []

    /// `verb` on the name's value key (``CounterName/storageKey``), with `argument` if given:
    /// written straight into wire bytes, as this runs for every named request.
    private func command(_ verb: StaticString, _ name: CounterName, _ argument: Int64? = nil) -> RedisCommand {
        RedisWire.keyCommand(verb, "{c:", name.text, "}", argument: argument, into: &commandBuffer)
        // Handed over, not copied: the command shares the buffer's storage until the next one is
        // written, by which time this one has been sent and dropped (then no copy is made either).
        return RedisCommand(encoded: commandBuffer)
    }

    func value(of name: CounterName) throws(CounterError) -> Int64? {
        switch try execute(command("GET", name), idempotent: true) {
        case .null:
            return nil
        case .string(let bytes):
            guard let value = CounterValue.parse(bytes) else {
                logger.error("counter value is not an integer", metadata: ["redis.key": "\(name.storageKey)"])
                throw .corruptValue
            }
            return value
        case let other:
            throw classify(other, command: "GET")
        }
    }

    /// Without an idempotency key: one command (INCRBY and DECRBY never retried after a broken
    /// connection, SET and DEL are); with one, the write-once script (``NamedRecord``).
    func apply(_ write: NamedWrite, to name: CounterName, idempotency: IdempotencyKey?, now: Timestamp) throws(CounterError) -> WriteOutcome {
        if let idempotency { return try idempotentApply(write, name, idempotency, now: now) }
        let reply: RedisReply
        switch write {
        case .increment(let by): reply = try execute(command("INCRBY", name, by), idempotent: false, write: true)
        case .decrement(let by): reply = try execute(command("DECRBY", name, by), idempotent: false, write: true)
        case .set(let value):
            reply = try execute(command("SET", name, value), idempotent: true, write: true)
            if case .status = reply { return WriteOutcome(value: value, replayed: false, timestamp: now) }
        case .delete: reply = try execute(command("DEL", name), idempotent: true, write: true)
        }
        guard case .integer(let value) = reply else { throw classify(reply, command: write.operation.uppercased()) }
        return WriteOutcome(value: value, replayed: false, timestamp: now)
    }

    private func idempotentApply(_ write: NamedWrite, _ name: CounterName, _ key: IdempotencyKey, now: Timestamp) throws(CounterError) -> WriteOutcome {
        let (replayed, record) = try writeOnce(.named, [name.storageKey, name.idempotencyKey(for: key), write.operation, write.argument,
                                                         String(config.idempotencyTTLSeconds), now.text])
        guard let (first, outcome) = NamedRecord.parse(record) else {
            throw classify(.error("malformed idempotency record"), command: "EVALSHA")
        }
        guard first == write else { throw .idempotencyKeyReusedForWrite(first) }
        return WriteOutcome(value: outcome.value, replayed: replayed, timestamp: outcome.timestamp)
    }

    /// SCAN calls one listing request makes at most: a sparse prefix in a large keyspace then
    /// returns a short page with a cursor, rather than holding a worker for a full scan.
    static let maxScansPerPage = 64

    func list(prefix: CounterPrefix, limit: Int, cursor: String) throws(CounterError) -> CounterPage {
        guard var position = ListCursor(cursor) else { throw .invalidCursor }
        var keys: [String] = []
        var scans = 0
        var next: String?
        while true {
            scans += 1
            let reply = try execute(RedisCommand(["SCAN", position.scan, "MATCH", prefix.scanPattern, "COUNT", String(max(limit, 10))]),
                                    idempotent: true)
            guard case .array(let parts) = reply, parts.count == 2, case .string(let following) = parts[0],
                  case .array(let found) = parts[1] else { throw classify(reply, command: "SCAN") }
            // Value keys only (an idempotency record whose key ends with } matches the pattern too).
            var batch: [String] = []
            for case .string(let bytes) in found {
                let key = String(decoding: bytes, as: UTF8.self)
                if let name = CounterName(storageKey: key), name.hasPrefix(prefix) { batch.append(key) }
            }
            batch.removeFirst(min(position.skip, batch.count))
            let room = limit - keys.count
            if batch.count > room {
                // The page ends inside this batch: the next one repeats this SCAN and skips what was taken.
                keys += batch.prefix(room)
                next = ListCursor(scan: position.scan, skip: position.skip + room).text
                break
            }
            keys += batch
            position = ListCursor(scan: String(decoding: following, as: UTF8.self), skip: 0)
            if position.scan == "0" { break }
            if keys.count == limit || scans == RedisCounterStore.maxScansPerPage {
                next = position.text
                break
            }
        }
        guard !keys.isEmpty else { return CounterPage(counters: [], next: next) }
        let reply = try execute(RedisCommand(["MGET"] + keys), idempotent: true)
        guard case .array(let values) = reply, values.count == keys.count else { throw classify(reply, command: "MGET") }
        var counters: [(name: CounterName, value: Int64)] = []
        for (key, value) in zip(keys, values) {
            // Deleted between SCAN and MGET: not listed. Not an integer: listed nowhere, logged.
            guard case .string(let bytes) = value, let name = CounterName(storageKey: key) else { continue }
            guard let number = CounterValue.parse(bytes) else {
                logger.error("counter value is not an integer", metadata: ["redis.key": "\(key)"])
                continue
            }
            counters.append((name, number))
        }
        return CounterPage(counters: counters, next: next)
    }

    func ping() throws(CounterError) {
        switch try execute(pingCommand, idempotent: true) {
        case .status: return
        case let other: throw classify(other, command: "PING")
        }
    }

    /// Runs `command` on a healthy connection. An idempotent command whose connection broke is
    /// retried once on a fresh one; INCR never is, since it may have been applied before the
    /// connection broke and a retry could count twice. A write is followed by `WAIT` in the same
    /// round trip when replicas must acknowledge it; too few acknowledgements is a 503.
    private func execute(_ command: RedisCommand, idempotent: Bool, write: Bool = false) throws(CounterError) -> RedisReply {
        var attempts = idempotent ? 2 : 1
        while true {
            let current = try session.connected()
            let replies: [RedisReply]
            do {
                if write, let wait {
                    replies = try current.run([command, wait])
                } else {
                    let reply = try current.run(command)
                    if case .error = reply {} else { session.answered() }
                    return reply
                }
            } catch {
                attempts -= 1
                session.disconnect(reason: error)
                if attempts == 0 { throw .unavailable(reason: "\(error)") }
                continue
            }
            // The write's own error (overflow, NOREPLICAS...) comes first; WAIT is then moot.
            if case .error = replies[0] { return replies[0] }
            try acknowledged(replies[1])
            session.answered()
            return replies[0]
        }
    }

    /// WAIT's answer: enough replicas, or a 503 that says how many.
    private func acknowledged(_ reply: RedisReply) throws(CounterError) {
        switch ReplicaAcknowledgement(reply: reply, required: config.waitReplicas) {
        case .enough:
            return
        case .shortfall(let acknowledged, let required):
            metrics.waitShortfalls.increment()
            logger.warning("write not acknowledged by enough replicas", metadata: [
                "redis.replicas_acknowledged": "\(acknowledged)", "redis.replicas_required": "\(required)",
                "redis": "\(session.endpoint)",
            ])
            throw .unavailable(reason: "WAIT: \(acknowledged) of \(required) replicas acknowledged")
        case nil:
            throw classify(reply, command: "WAIT")
        }
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
        switch RedisErrorReply(message: message, authenticates: config.redisPassword != nil,
                               followsFailover: session.followsSentinel) {
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
            // Counted, logged and backed off like any broken connection; with Sentinel the next
            // connection goes wherever the primary is now.
            session.disconnect(reason: .io(message))
            return .unavailable(reason: message)
        case .misconfigured:
            // Every request fails the same way until an operator acts: counted each time, logged
            // at most every 10 s per worker.
            session.reportConfigurationError(metadata: metadata)
            return .misconfigured(reason: message)
        case .unexpected:
            metrics.redisError("reply")
            logger.error("redis error reply", metadata: metadata)
            return .unexpected(message: message)
        }
    }
}
