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
public final class RedisCounterStore: CounterStore {
    private let config: Config
    private let logger: Logger
    private let metrics: RedisMetrics
    /// Where commands go: one Redis (a fixed address, or the primary Sentinel names), or, in
    /// cluster mode (`REDIS_CLUSTER_NODES`), the node of their key's slot.
    private enum Topology {
        case single(RedisSession)
        case cluster(RedisCluster)
    }
    private let topology: Topology
    /// The cluster, in cluster mode.
    private var cluster: RedisCluster? {
        if case .cluster(let cluster) = topology { cluster } else { nil }
    }
    /// The default counter's slot (its records share it through the `{...}` hash tag).
    private let counterSlot: Int
    /// The session that ran the last command: the one a reply's consequences apply to.
    private var lastSession: RedisSession?
    private let asking = RedisCommand(["ASKING"])

    private let get: RedisCommand
    private let incr: RedisCommand
    private let setZero: RedisCommand
    private let pingCommand: RedisCommand
    private let wait: RedisCommand?

    public init(config: Config, logger: Logger, metrics: RedisMetrics, recovery: RedisRecovery) {
        self.config = config
        self.logger = logger
        self.metrics = metrics
        topology = config.clusterNodes == nil
            ? .single(RedisSession(config: config, logger: logger, metrics: metrics, recovery: recovery))
            : .cluster(RedisCluster(config: config, logger: logger, metrics: metrics, recovery: recovery))
        counterSlot = ClusterSlot.of(config.counterKey)
        get = RedisCommand(["GET", config.counterKey])
        incr = RedisCommand(["INCR", config.counterKey])
        setZero = RedisCommand(["SET", config.counterKey, "0"])
        pingCommand = RedisCommand(["PING"])
        wait = config.waitReplicas > 0
            ? RedisCommand(["WAIT", String(config.waitReplicas), String(config.waitTimeoutMS)]) : nil
    }

    /// Connects ahead of the first request; failure is only logged (the service starts anyway).
    public func warmUp() {
        switch topology {
        case .single(let session): _ = try? session.connected()
        case .cluster(let cluster): _ = try? cluster.target(forSlot: counterSlot).session.connected()
        }
    }

    /// Whose slot a command's key is in (cluster mode routes by it; otherwise unused, and free).
    private enum KeyOwner {
        /// The default counter and its records.
        case defaultCounter
        /// A named counter and its records.
        case named(CounterName)
    }

    private func slot(of owner: KeyOwner) -> Int {
        switch owner {
        case .defaultCounter: counterSlot
        case .named(let name): name.slot
        }
    }

    public func read() throws(CounterError) -> Int64 {
        try storedValue(execute(get, for: .defaultCounter, idempotent: true), key: config.counterKey) ?? 0
    }

    /// A GET's answer: the value, nil for no key, and a logged 500 for one that is not an integer.
    private func storedValue(_ reply: RedisReply, key: @autoclosure () -> String) throws(CounterError) -> Int64? {
        switch reply {
        case .null:
            return nil
        case .string(let bytes):
            guard let value = CounterValue.parse(bytes) else {
                logger.error("counter value is not an integer", metadata: ["redis.key": "\(key())"])
                throw .corruptValue
            }
            return value
        case let other:
            throw classify(other, command: "GET")
        }
    }

    public func increment(idempotency: IdempotencyKey?, now: Timestamp) throws(CounterError) -> WriteOutcome {
        if let idempotency { return try idempotentWrite(.increment, idempotency, now: now) }
        switch try execute(incr, for: .defaultCounter, idempotent: false, write: true) {
        case .integer(let value):
            return WriteOutcome(value: value, replayed: false, timestamp: now)
        case let other:
            throw classify(other, command: "INCR")
        }
    }

    public func reset(idempotency: IdempotencyKey?, now: Timestamp) throws(CounterError) -> WriteOutcome {
        if let idempotency { return try idempotentWrite(.reset, idempotency, now: now) }
        switch try execute(setZero, for: .defaultCounter, idempotent: true, write: true) {
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
        let (replayed, record) = try writeOnce(.original, for: .defaultCounter, [config.counterKey, key.storageKey(counterKey: config.counterKey), operation.rawValue,
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

    /// Each script's SHA1, learnt from the first `SCRIPT LOAD`; nil until then. The SHA1 of a
    /// script is the same on every server, so it is never forgotten: a server that lacks the
    /// script (a restart, `SCRIPT FLUSH`, another cluster node) answers NOSCRIPT and ``execute``
    /// loads it there.
    private var shas: (original: String?, named: String?) = (nil, nil)

    /// Runs a write-once script with two keys and `arguments` (its KEYS then ARGV) and returns
    /// its answer: whether it replayed a record, and the record.
    private func writeOnce(_ script: WriteScript, for owner: KeyOwner, _ arguments: [String]) throws(CounterError) -> (replayed: Bool, record: String) {
        let reply = try execute(RedisCommand(["EVALSHA", try sha(of: script, for: owner), "2"] + arguments), for: owner, idempotent: true,
                                write: true, script: script.source)
        guard case .array(let items) = reply else { throw classify(reply, command: "EVALSHA") }
        guard items.count == 2, case .integer(let replayed) = items[0], case .string(let record) = items[1] else {
            throw classify(.error("malformed idempotency record"), command: "EVALSHA")
        }
        return (replayed == 1, String(decoding: record, as: UTF8.self))
    }

    /// The script's SHA1, loading it (where `owner`'s keys live) the first time.
    private func sha(of script: WriteScript, for owner: KeyOwner) throws(CounterError) -> String {
        switch script {
        case .original: if let sha = shas.original { return sha }
        case .named: if let sha = shas.named { return sha }
        }
        let sha: String
        switch try execute(RedisCommand(["SCRIPT", "LOAD", script.source]), for: owner, idempotent: true) {
        case .string(let bytes): sha = String(decoding: bytes, as: UTF8.self)
        case let other: throw classify(other, command: "SCRIPT LOAD")
        }
        switch script {
        case .original: shas.original = sha
        case .named: shas.named = sha
        }
        return sha
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

    public func value(of name: CounterName) throws(CounterError) -> Int64? {
        try storedValue(execute(command("GET", name), for: .named(name), idempotent: true), key: name.storageKey)
    }

    /// Without an idempotency key: one command (INCRBY and DECRBY never retried after a broken
    /// connection, SET and DEL are); with one, the write-once script (``NamedRecord``).
    public func apply(_ write: NamedWrite, to name: CounterName, idempotency: IdempotencyKey?, now: Timestamp) throws(CounterError) -> WriteOutcome {
        if let idempotency { return try idempotentApply(write, name, idempotency, now: now) }
        let reply: RedisReply
        switch write {
        case .increment(let by): reply = try execute(command("INCRBY", name, by), for: .named(name), idempotent: false, write: true)
        case .decrement(let by): reply = try execute(command("DECRBY", name, by), for: .named(name), idempotent: false, write: true)
        case .set(let value):
            reply = try execute(command("SET", name, value), for: .named(name), idempotent: true, write: true)
            if case .status = reply { return WriteOutcome(value: value, replayed: false, timestamp: now) }
        case .delete: reply = try execute(command("DEL", name), for: .named(name), idempotent: true, write: true)
        }
        guard case .integer(let value) = reply else { throw classify(reply, command: write.operation.uppercased()) }
        return WriteOutcome(value: value, replayed: false, timestamp: now)
    }

    private func idempotentApply(_ write: NamedWrite, _ name: CounterName, _ key: IdempotencyKey, now: Timestamp) throws(CounterError) -> WriteOutcome {
        let (replayed, record) = try writeOnce(.named, for: .named(name), [name.storageKey, name.idempotencyKey(for: key), write.operation, write.argument,
                                                         String(config.idempotencyTTLSeconds), now.text])
        guard let (first, outcome) = NamedRecord.parse(record) else {
            throw classify(.error("malformed idempotency record"), command: "EVALSHA")
        }
        guard first == write else { throw .idempotencyKeyReusedForWrite(first) }
        return WriteOutcome(value: outcome.value, replayed: replayed, timestamp: outcome.timestamp)
    }

    /// SCAN calls one listing request makes at most: a sparse prefix in a large keyspace then
    /// returns a short page with a cursor, rather than holding a worker for a full scan.
    public static let maxScansPerPage = 64

    /// A page of counters: SCAN over the one Redis, or over each primary of a cluster in turn
    /// (the cursor says which), then the values of the keys found, read from where they were
    /// found. A cursor whose node is gone (the cluster shrank between two pages) ends the listing.
    public func list(prefix: CounterPrefix, limit: Int, cursor: String) throws(CounterError) -> CounterPage {
        guard var position = ListCursor(cursor) else { throw .invalidCursor }
        let nodes: [HostPort?] = try cluster?.servingNodes() ?? [nil]
        if cluster == nil, position.node != 0 { throw .invalidCursor }
        guard position.node < nodes.count else { return CounterPage(counters: [], next: nil) }
        var found: [(node: Int, key: String)] = []
        var scans = 0
        var next: String?
        while true {
            scans += 1
            let scan = RedisCommand(["SCAN", position.scan, "MATCH", prefix.scanPattern, "COUNT", String(max(limit, 10))])
            let reply = try runOn(nodes[position.node], scan)
            guard case .array(let parts) = reply, parts.count == 2, case .string(let following) = parts[0],
                  case .array(let keys) = parts[1] else { throw classify(reply, command: "SCAN") }
            // Value keys only (an idempotency record whose key ends with } matches the pattern too).
            var batch: [String] = []
            for case .string(let bytes) in keys {
                let key = String(decoding: bytes, as: UTF8.self)
                if let name = CounterName(storageKey: key), name.hasPrefix(prefix) { batch.append(key) }
            }
            batch.removeFirst(min(position.skip, batch.count))
            let room = limit - found.count
            if batch.count > room {
                // The page ends inside this batch: the next one repeats this SCAN and skips what was taken.
                found += batch.prefix(room).map { (position.node, $0) }
                next = ListCursor(node: position.node, scan: position.scan, skip: position.skip + room).text
                break
            }
            found += batch.map { (position.node, $0) }
            position = ListCursor(node: position.node, scan: String(decoding: following, as: UTF8.self), skip: 0)
            if position.scan == "0" {
                // This node is done; the next one, if any, starts from its beginning.
                guard position.node + 1 < nodes.count else { break }
                position = ListCursor(node: position.node + 1, scan: "0", skip: 0)
            }
            if found.count == limit || scans == RedisCounterStore.maxScansPerPage {
                next = position.text
                break
            }
        }
        var counters: [(name: CounterName, value: Int64)] = []
        for index in Set(found.map(\.node)).sorted() {
            let keys = found.filter { $0.node == index }.map(\.key)
            for (key, value) in zip(keys, try values(of: keys, on: nodes[index])) {
                // Deleted (or moved away) between SCAN and the read: not listed. Not an integer:
                // listed nowhere, logged.
                guard case .string(let bytes) = value, let name = CounterName(storageKey: key) else { continue }
                guard let number = CounterValue.parse(bytes) else {
                    logger.error("counter value is not an integer", metadata: ["redis.key": "\(key)"])
                    continue
                }
                counters.append((name, number))
            }
        }
        return CounterPage(counters: counters, next: next)
    }

    /// `command` on `node` (a cluster primary), or on the one Redis when nil: commands that are
    /// about a server, not a key (SCAN).
    private func runOn(_ node: HostPort?, _ command: RedisCommand) throws(CounterError) -> RedisReply {
        guard let node, let cluster else { return try execute(command, for: .defaultCounter, idempotent: true) }
        do throws(CounterError) {
            return try run(command, on: cluster.session(for: node), idempotent: true, write: false, asking: false)
        } catch {
            cluster.nodeFailed()
            throw error
        }
    }

    /// The values of `keys`, as found on `node`: one MGET on a single Redis; on a cluster node,
    /// one GET each in one round trip (MGET would need them all in one slot). A key that moved
    /// meanwhile answers a redirect, read as absent.
    private func values(of keys: [String], on node: HostPort?) throws(CounterError) -> [RedisReply] {
        guard !keys.isEmpty else { return [] }
        guard let node, let cluster else {
            let reply = try execute(RedisCommand(["MGET"] + keys), for: .defaultCounter, idempotent: true)
            guard case .array(let values) = reply, values.count == keys.count else { throw classify(reply, command: "MGET") }
            return values
        }
        let target = cluster.session(for: node)
        lastSession = target
        let replies: [RedisReply]
        do {
            replies = try target.connected().run(keys.map { RedisCommand(["GET", $0]) })
        } catch let error as RedisError {
            target.disconnect(reason: error)
            cluster.nodeFailed()
            throw .unavailable(reason: "\(error)")
        } catch let error as CounterError {
            throw error
        } catch {
            throw .unavailable(reason: "\(error)")
        }
        return replies.map { if case .error = $0 { .null } else { $0 } }
    }

    public func ping() throws(CounterError) {
        switch try execute(pingCommand, for: .defaultCounter, idempotent: true) {
        case .status: return
        case let other: throw classify(other, command: "PING")
        }
    }

    /// Runs `command` where its key lives: on the one Redis (or Sentinel's primary), or in a
    /// cluster on the primary of the key's slot, following `MOVED` (the map is updated; the
    /// command is sent again there: the node that redirected did not run it, so even an `INCR`
    /// may be) and `ASK` (this one command to that node, after `ASKING`), at most 5 times.
    /// `script`: the source of the script an `EVALSHA` runs. A server that lacks it (restarted,
    /// flushed, or a cluster node the worker reaches only through `ASK`) answers NOSCRIPT, having
    /// run nothing: it is loaded on that very server and the command sent again, once.
    private func execute(_ command: RedisCommand, for owner: KeyOwner, idempotent: Bool, write: Bool = false,
                         script: String? = nil) throws(CounterError) -> RedisReply {
        var askTarget: HostPort?
        var loadedScript = false
        for _ in 0..<5 {
            let target: RedisSession
            var node: HostPort?
            var connection: RedisConnection?
            switch topology {
            case .single(let session):
                target = session
            case .cluster(let cluster):
                let slot = slot(of: owner)
                let chosen = if let askTarget { (node: askTarget, session: cluster.session(for: askTarget)) } else { try cluster.target(forSlot: slot) }
                lastSession = chosen.session
                do throws(CounterError) {
                    connection = try chosen.session.connected()
                } catch {
                    // Nothing was sent. A removed node, or a primary just failed: if the map, read
                    // again, names another node for the slot, the command goes there.
                    cluster.nodeFailed()
                    if askTarget == nil, cluster.reloadNow(), let fresh = try? cluster.node(forSlot: slot), fresh != chosen.node { continue }
                    throw error
                }
                (target, node) = (chosen.session, chosen.node)
            }
            let reply: RedisReply
            do throws(CounterError) {
                reply = try run(command, on: target, idempotent: idempotent, write: write, asking: askTarget != nil, connection: connection)
            } catch {
                cluster?.nodeFailed()
                throw error
            }
            guard case .error(let message) = reply else { return reply }
            if let script, !loadedScript, message.hasPrefix("NOSCRIPT") {
                loadedScript = true
                let loaded = try run(RedisCommand(["SCRIPT", "LOAD", script]), on: target, idempotent: true, write: false, asking: false)
                if case .error = loaded { return loaded }
                continue  // the same server: an ASK target is kept, the map still names this one
            }
            guard let cluster, let node, let redirect = ClusterRedirect(error: message, from: node) else { return reply }
            switch redirect {
            case .moved(let movedSlot, let to):
                metrics.clusterRedirect("moved")
                cluster.moved(slot: movedSlot, to: to)
                askTarget = nil
            case .ask(_, let to):
                metrics.clusterRedirect("ask")
                askTarget = to
            }
        }
        throw .unavailable(reason: "slot \(slot(of: owner)) was still redirected after 5 tries")
    }

    /// Runs `command` on `session`'s healthy connection. An idempotent command whose connection
    /// broke is retried once on a fresh one; INCR never is, since it may have been applied before
    /// the connection broke and a retry could count twice. A write is followed by `WAIT` in the
    /// same round trip when replicas must acknowledge it; too few acknowledgements is a 503. With
    /// `asking`, `ASKING` goes first in the same round trip (a cluster slot in migration).
    /// `connection`: the session's connection when the caller has just checked it (not asked again).
    private func run(_ command: RedisCommand, on session: RedisSession, idempotent: Bool, write: Bool, asking: Bool,
                     connection: RedisConnection? = nil) throws(CounterError) -> RedisReply {
        lastSession = session
        var attempts = idempotent ? 2 : 1
        let waits = write && wait != nil
        var checked = connection
        while true {
            let current: RedisConnection
            if let given = checked {
                current = given
                checked = nil
            } else {
                current = try session.connected()
            }
            let replies: [RedisReply]
            do {
                if !waits && !asking {
                    let reply = try current.run(command)
                    if case .error = reply {} else { session.answered() }
                    return reply
                }
                var batch: [RedisCommand] = asking ? [self.asking, command] : [command]
                if waits, let wait { batch.append(wait) }
                replies = Array(try current.run(batch).dropFirst(asking ? 1 : 0))
            } catch {
                attempts -= 1
                session.disconnect(reason: error)
                if attempts == 0 { throw .unavailable(reason: "\(error)") }
                continue
            }
            // The write's own error (overflow, NOREPLICAS, a redirect...) comes first; WAIT is then moot.
            if case .error = replies[0] { return replies[0] }
            if waits { try acknowledged(replies[1]) }
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
                "redis": "\(lastSession.map { "\($0.endpoint)" } ?? "-")",
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
            metrics.error("reply")
            logger.error("unexpected redis reply", metadata: ["redis.command": "\(command)", "redis.reply": "\(reply)"])
            return .unexpected(message: "\(reply)")
        }
        let metadata: Logger.Metadata = ["redis.command": "\(command)", "redis.error": "\(message)"]
        // In a cluster a node may have been demoted or failed over: act as with Sentinel.
        switch RedisErrorReply(message: message, authenticates: config.redisPassword != nil,
                               followsFailover: lastSession?.followsSentinel == true || cluster != nil) {
        case .overflow:
            return .overflow
        case .corruptValue:
            metrics.error("reply")
            logger.error("counter value is not a 64-bit integer", metadata: ["redis.key": "\(config.counterKey)", "redis.error": "\(message)"])
            return .corruptValue
        case .transient:
            metrics.error("reply")
            logger.warning("redis refused a command", metadata: metadata)
            return .unavailable(reason: message)
        case .reconnect:
            // Counted, logged and backed off like any broken connection; with Sentinel the next
            // connection goes wherever the primary is now.
            lastSession?.disconnect(reason: .io(message))
            cluster?.nodeFailed()
            return .unavailable(reason: message)
        case .misconfigured:
            // Every request fails the same way until an operator acts: counted each time, logged
            // at most every 10 s per worker.
            lastSession?.reportConfigurationError(metadata: metadata)
            return .misconfigured(reason: message)
        case .unexpected:
            metrics.error("reply")
            logger.error("redis error reply", metadata: metadata)
            return .unexpected(message: message)
        }
    }
}
