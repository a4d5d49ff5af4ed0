import Metrics
import Synchronization

/// The Redis layer's metrics, recorded through swift-metrics (the process bootstraps the backend
/// first, then makes one of these and hands it to every worker's store).
///
/// Names: `counter_redis_connected_workers`, `counter_redis_errors_total{kind}`,
/// `counter_redis_reconnects_total`, `counter_redis_wait_shortfalls_total`; with Sentinel,
/// `counter_redis_failovers_total` and `counter_redis_primary{address}`; with a cluster,
/// `counter_redis_cluster_redirects_total{kind}` and `counter_redis_cluster_map_loads_total`.
public final class RedisMetrics: Sendable {
    let connectedWorkers: Meter
    let reconnects: Counter
    let waitShortfalls: Counter
    /// Reads of a Redis Cluster's slot map (`CLUSTER SLOTS`): at start, and after redirects or a failed node.
    let clusterMapLoads: Counter
    private let failovers: Counter
    /// The primary the workers last connected to (Sentinel mode), shared by all workers.
    private let primary = Mutex<String?>(nil)

    /// Call after `MetricsSystem.bootstrap`: the handles bind to the backend when made.
    public init() {
        connectedWorkers = Meter(label: "counter_redis_connected_workers")
        reconnects = Counter(label: "counter_redis_reconnects_total")
        waitShortfalls = Counter(label: "counter_redis_wait_shortfalls_total")
        clusterMapLoads = Counter(label: "counter_redis_cluster_map_loads_total")
        failovers = Counter(label: "counter_redis_failovers_total")
    }

    /// A Redis failure of one kind: `connect` (including no Sentinel naming a primary, or a node
    /// that is not the primary), `handshake` (AUTH or SELECT refused by a passing server state),
    /// `io` (a connection broke or was dropped), `reply` (an error reply), `config` (refused for a
    /// reason only an operator can fix: a wrong password, an ACL permission, a missing database).
    func error(_ kind: String) {
        Counter(label: "counter_redis_errors_total", dimensions: [("kind", kind)]).increment()
    }

    /// A Redis Cluster redirect followed: `moved` (the slot lives elsewhere now) or `ask` (a slot
    /// in migration, this key already moved). Many during a reshard, none in a settled cluster.
    func clusterRedirect(_ kind: String) {
        Counter(label: "counter_redis_cluster_redirects_total", dimensions: [("kind", kind)]).increment()
    }

    /// What a worker's connection to a primary meant for the whole process.
    enum PrimaryNews { case same, first, changed(from: String) }

    /// Records that a worker connected to the primary at `address` (Sentinel mode). The first
    /// worker to see a new primary hears `.first` or `.changed` (and logs it); a change from a
    /// known primary counts as a failover followed. `counter_redis_primary{address}` is 1 for the
    /// current primary and 0 for earlier ones.
    func notePrimary(_ address: String) -> PrimaryNews {
        let previous: String?? = primary.withLock { current in
            guard current != address else { return .none }
            defer { current = address }
            return .some(current)
        }
        guard case .some(let old) = previous else { return .same }
        Gauge(label: "counter_redis_primary", dimensions: [("address", address)]).record(1)
        guard let old else { return .first }
        failovers.increment()
        Gauge(label: "counter_redis_primary", dimensions: [("address", old)]).record(0)
        return .changed(from: old)
    }
}
