import CounterCore
import Logging

/// One worker's view of a Redis Cluster: the slot map, and a session per node the worker has
/// talked to (opened lazily, each with its own reconnect backoff, closed when its node leaves the
/// map). hiredis 0.14 has no cluster support, so routing by slot is done here, as every cluster
/// client does: the map comes from `CLUSTER SLOTS` (at the first request, and again after a
/// `MOVED` or a node that failed), and a `MOVED` also updates its one slot at once.
final class RedisCluster {
    private let config: Config
    private let logger: Logger
    private let metrics: RedisMetrics
    private let recovery: RedisRecovery
    private var map: ClusterSlotMap?
    private var sessions: [HostPort: RedisSession] = [:]
    /// The sessions again, by the map's node index (``ClusterSlotMap/nodeIndex(for:)``): the
    /// per-request lookup is an array read, not a hash of the node's address. Rebuilt with the map.
    private var byIndex: [RedisSession?] = []
    /// The map is read again at the next request after this (monotonic ns); 0: not due.
    private var refreshDue: UInt64 = 0
    private var lastLoad: UInt64 = 0
    private let clusterSlots = RedisCommand(["CLUSTER", "SLOTS"])
    /// One "no slot map" line per worker every 10 s: while no node gives a map, every request
    /// fails the same way (a node list that is not a cluster, a cluster still being formed).
    private var mapErrorLog = LogThrottle(intervalNS: 10_000_000_000)

    /// The least time between two reads of the map: a burst of MOVED during a reshard (one per
    /// request) must not turn into a `CLUSTER SLOTS` per request.
    static let minimumReloadNS: UInt64 = 100_000_000

    init(config: Config, logger: Logger, metrics: RedisMetrics, recovery: RedisRecovery) {
        self.config = config
        self.logger = logger
        self.metrics = metrics
        self.recovery = recovery
    }

    /// The primary that serves `slot` and its session, reading the map first when there is none
    /// yet or it is due.
    func target(forSlot slot: Int) throws(CounterError) -> (node: HostPort, session: RedisSession) {
        try ensureMap()
        guard let map, let index = map.nodeIndex(for: slot) else {
            throw .unavailable(reason: "no node serves slot \(slot) (the cluster is being formed or has lost a shard)")
        }
        if index < byIndex.count, let known = byIndex[index] { return (map.nodes[index], known) }
        let node = map.nodes[index]
        let made = session(for: node)
        if byIndex.count < map.nodes.count { byIndex += Array(repeating: nil, count: map.nodes.count - byIndex.count) }
        byIndex[index] = made
        return (node, made)
    }

    /// The primary that serves `slot` (see ``target(forSlot:)``).
    func node(forSlot slot: Int) throws(CounterError) -> HostPort {
        try target(forSlot: slot).node
    }

    /// Reads the map when there is none yet or a reread is due (the clock is read only then).
    private func ensureMap() throws(CounterError) {
        guard map == nil || refreshDue != 0 else { return }
        let now = MonotonicClock.now()
        guard map == nil || now >= refreshDue else { return }
        do {
            try load(now: now)
        } catch {
            // A map we already have is better than none: keep serving from it.
            guard map != nil else { throw error }
        }
    }

    /// The session of `node`, made on first use.
    func session(for node: HostPort) -> RedisSession {
        if let session = sessions[node] { return session }
        let session = RedisSession(config: config, logger: logger, metrics: metrics, recovery: recovery, node: node)
        sessions[node] = session
        return session
    }

    /// After `MOVED slot node`: the slot is served there now, and the rest of the map may have
    /// changed too (a reshard moves many slots): read it again soon.
    func moved(slot: Int, to node: HostPort) {
        map?.move(slot: slot, to: node)
        scheduleReload()
    }

    /// A node failed to answer: a failover may have promoted a replica; read the map again soon.
    func nodeFailed() {
        scheduleReload()
    }

    /// Reads the map again now unless it was read within ``minimumReloadNS``; true when it was.
    /// For a node that cannot be reached: a removed node, or a primary just failed over.
    func reloadNow() -> Bool {
        let now = MonotonicClock.now()
        guard now >= lastLoad + RedisCluster.minimumReloadNS else { return false }
        do {
            try load(now: now)
            return true
        } catch {
            return false
        }
    }

    /// The primaries that serve slots, in a stable order (a listing walks them in this order).
    func servingNodes() throws(CounterError) -> [HostPort] {
        try ensureMap()
        return (map?.servingNodes ?? []).sorted { $0.description < $1.description }
    }

    private func scheduleReload() {
        let now = MonotonicClock.now()
        if refreshDue == 0 { refreshDue = max(now, lastLoad + RedisCluster.minimumReloadNS) }
    }

    /// Reads `CLUSTER SLOTS` from the first node that answers: the nodes of the map in hand, then
    /// the configured ones. Nodes that no longer serve slots lose their sessions.
    private func load(now: UInt64) throws(CounterError) {
        lastLoad = now
        refreshDue = 0
        var candidates = map?.servingNodes ?? []
        for entry in config.clusterNodes ?? [] where !candidates.contains(entry) { candidates.append(entry) }
        var reasons: [String] = []
        for node in candidates {
            let reply: RedisReply
            do {
                reply = try session(for: node).connected().run(clusterSlots)
            } catch let error as RedisError {
                sessions[node]?.disconnect(reason: error)
                reasons.append("\(node): \(error)")
                continue
            } catch {
                reasons.append("\(node): \(error)")
                continue
            }
            guard let fresh = ClusterSlotMap(clusterSlots: reply, from: node), fresh.assignedSlots > 0 else {
                reasons.append("\(node): no slot map in \(reply)")
                continue
            }
            let before = map
            map = fresh
            metrics.clusterMapLoads.increment()
            if before?.servingNodes != fresh.servingNodes {
                logger.info("redis cluster map", metadata: [
                    "redis.cluster_primaries": "\(fresh.servingNodes.map(\.description).joined(separator: ","))",
                    "redis.cluster_slots": "\(fresh.assignedSlots)",
                ])
            }
            // Sessions of nodes that left the map are closed (a removed node, a demoted primary).
            let serving = Set(fresh.servingNodes)
            for node in sessions.keys where !serving.contains(node) { sessions[node] = nil }
            byIndex = fresh.nodes.map { sessions[$0] }
            return
        }
        scheduleReload()
        let reason = "no cluster node gave the slot map (\(reasons.joined(separator: "; ")))"
        if let held = mapErrorLog.admit(now: now) {
            logger.warning("redis cluster map unavailable", metadata: ["redis.error": "\(reason)", "redis.errors_not_logged": "\(held)"])
        }
        throw .unavailable(reason: reason)
    }
}
