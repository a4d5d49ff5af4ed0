import CounterCore
import Metrics
import Synchronization
import class Prometheus.PrometheusCollectorRegistry
import struct Prometheus.PrometheusMetricsFactory

/// The responder's Prometheus metrics, recorded through swift-metrics and exposed by
/// swift-prometheus. The exposition is served on `/metrics` to nginx's internal metrics server
/// only (see nginx/counter-api.conf); the public server never routes it.
///
/// Names: `counter_http_requests_total{route,status}`, `counter_http_request_duration_seconds{route}`
/// (histogram), `counter_workers_busy`, `counter_worker_threads`, `counter_redis_connected_workers`,
/// `counter_redis_errors_total{kind}`, `counter_redis_reconnects_total`,
/// `counter_idempotent_replays_total`, `counter_fastcgi_connections_total`,
/// `counter_fastcgi_listener_rearm_failures_total`,
/// `counter_build_info{version}`; with Sentinel and WAIT,
/// `counter_redis_failovers_total`, `counter_redis_primary{address}`,
/// `counter_redis_wait_shortfalls_total`; and what nginx answered
/// itself, from its edge log (``EdgeLogReceiver``): `counter_edge_requests_total{route,status}`,
/// `counter_edge_log_dropped_total`, `counter_edge_log_invalid_total`.
final class ServiceMetrics: Sendable {
    /// The version reported in `counter_build_info`.
    static let version = "1.0.0"

    private let registry = PrometheusCollectorRegistry()
    let busyWorkers: Meter
    let redisConnectedWorkers: Meter
    let redisReconnects: Counter
    let idempotentReplays: Counter
    let waitShortfalls: Counter
    /// Reads of a Redis Cluster's slot map (`CLUSTER SLOTS`): at start, and after redirects or a failed node.
    let clusterMapLoads: Counter
    /// Connections accepted from nginx. With kept connections it grows only when nginx opens more
    /// than its `keepalive` cache holds: a rate near the request rate means that cache is too small.
    let connectionsAccepted: Counter
    /// Times epoll refused to watch the listening socket again; if that lasts, the process stops
    /// (a responder that cannot hear new connections must not look alive).
    let listenerRearmFailures: Counter
    private let failovers: Counter
    /// The primary the workers last connected to (Sentinel mode), shared by all workers.
    private let primary = Mutex<String?>(nil)

    /// Bootstraps swift-metrics with the Prometheus backend; call once, at start.
    init(threads: Int) {
        var factory = PrometheusMetricsFactory(registry: registry)
        // Requests take well under a millisecond when healthy and are bounded by the Redis timeout.
        factory.defaultDurationHistogramBuckets = [
            .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
            .milliseconds(500), .seconds(1), .seconds(2.5),
        ]
        MetricsSystem.bootstrap(factory)
        busyWorkers = Meter(label: "counter_workers_busy")
        redisConnectedWorkers = Meter(label: "counter_redis_connected_workers")
        redisReconnects = Counter(label: "counter_redis_reconnects_total")
        idempotentReplays = Counter(label: "counter_idempotent_replays_total")
        waitShortfalls = Counter(label: "counter_redis_wait_shortfalls_total")
        clusterMapLoads = Counter(label: "counter_redis_cluster_map_loads_total")
        failovers = Counter(label: "counter_redis_failovers_total")
        connectionsAccepted = Counter(label: "counter_fastcgi_connections_total")
        listenerRearmFailures = Counter(label: "counter_fastcgi_listener_rearm_failures_total")
        Gauge(label: "counter_worker_threads").record(threads)
        Gauge(label: "counter_build_info", dimensions: [("version", ServiceMetrics.version)]).record(1)
    }

    /// A Redis failure of one kind: `connect` (including no Sentinel naming a primary, or a node
    /// that is not the primary), `handshake` (AUTH or SELECT refused by a passing server state),
    /// `io` (a connection broke or was dropped), `reply` (an error reply), `config` (refused for a
    /// reason only an operator can fix: a wrong password, an ACL permission, a missing database).
    func redisError(_ kind: String) {
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

    /// The Prometheus text exposition as a response.
    func response() -> Response {
        var body: [UInt8] = []
        registry.emit(into: &body)
        return Response(status: .ok, contentType: .prometheusText, body: body)
    }
}

/// One worker's handles on the per-request metrics, created on first use and kept, so the hot
/// path does a dictionary lookup and an atomic add instead of a factory lookup under a lock.
struct RequestMetrics {
    private var requests: [Int: Counter] = [:]
    /// One per route, and one for `other`: indexed, not hashed.
    private var durations = [Timer?](repeating: nil, count: RequestMetrics.routes.count + 1)
    private static let allRoutes = Route.allCases
    private static let counterRoutes = CounterRoute.allCases
    /// The route labels: the original's routes, then the named-counter templates.
    private static let routes = allRoutes.map(\.rawValue) + counterRoutes.map(\.rawValue)

    /// Records one request. Unknown paths share the route label `other` (bounded cardinality);
    /// metrics scrapes are not API requests and are not recorded. One dictionary lookup per
    /// request: swift-metrics' Counter and Timer are classes.
    mutating func record(_ endpoint: Endpoint, status: Int, nanoseconds: UInt64) {
        let routeIndex: Int
        switch endpoint {
        case .metrics: return
        case .api(let route): routeIndex = RequestMetrics.allRoutes.firstIndex(of: route) ?? RequestMetrics.routes.count
        case .counters(let route):
            routeIndex = RequestMetrics.counterRoutes.firstIndex(of: route).map { RequestMetrics.allRoutes.count + $0 } ?? RequestMetrics.routes.count
        case .unknown: routeIndex = RequestMetrics.routes.count
        }
        let route = routeIndex < RequestMetrics.routes.count ? RequestMetrics.routes[routeIndex] : "other"
        let key = routeIndex * 1000 + status
        if let counter = requests[key] {
            counter.increment()
        } else {
            let counter = Counter(label: "counter_http_requests_total", dimensions: [("route", route), ("status", String(status))])
            requests[key] = counter
            counter.increment()
        }
        if let timer = durations[routeIndex] {
            timer.recordNanoseconds(Int64(nanoseconds))
        } else {
            let timer = Timer(label: "counter_http_request_duration_seconds", dimensions: [("route", route)])
            durations[routeIndex] = timer
            timer.recordNanoseconds(Int64(nanoseconds))
        }
    }
}
