import CounterCore
import CounterRedis
import Metrics
import class Prometheus.PrometheusCollectorRegistry
import struct Prometheus.PrometheusMetricsFactory

/// The responder's Prometheus metrics, recorded through swift-metrics and exposed by
/// swift-prometheus. The exposition is served on `/metrics` to nginx's internal metrics server
/// only (see nginx/counter-api.conf); the public server never routes it.
///
/// Names: `counter_http_requests_total{route,status}`, `counter_http_request_duration_seconds{route}`
/// (histogram), `counter_workers_busy`, `counter_worker_threads`,
/// `counter_idempotent_replays_total`, `counter_fastcgi_connections_total`,
/// `counter_fastcgi_listener_rearm_failures_total`,
/// `counter_build_info{version}`; the Redis layer's (``RedisMetrics``); and what nginx answered
/// itself, from its edge log (``EdgeLogReceiver``): `counter_edge_requests_total{route,status}`,
/// `counter_edge_log_dropped_total`, `counter_edge_log_invalid_total`.
final class ServiceMetrics: Sendable {
    /// The version reported in `counter_build_info`.
    static let version = "1.0.0"

    private let registry = PrometheusCollectorRegistry()
    let busyWorkers: Meter
    let idempotentReplays: Counter
    /// The Redis layer's own.
    let redis: RedisMetrics
    /// Connections accepted from nginx. With kept connections it grows only when nginx opens more
    /// than its `keepalive` cache holds: a rate near the request rate means that cache is too small.
    let connectionsAccepted: Counter
    /// Times epoll refused to watch the listening socket again; if that lasts, the process stops
    /// (a responder that cannot hear new connections must not look alive).
    let listenerRearmFailures: Counter

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
        idempotentReplays = Counter(label: "counter_idempotent_replays_total")
        redis = RedisMetrics()
        connectionsAccepted = Counter(label: "counter_fastcgi_connections_total")
        listenerRearmFailures = Counter(label: "counter_fastcgi_listener_rearm_failures_total")
        Gauge(label: "counter_worker_threads").record(threads)
        Gauge(label: "counter_build_info", dimensions: [("version", ServiceMetrics.version)]).record(1)
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
