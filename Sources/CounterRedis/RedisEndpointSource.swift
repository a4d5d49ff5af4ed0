import CounterCore
import Logging

/// Where a worker's next Redis connection goes: the fixed address, or the primary that the
/// Sentinels name right now (asked on every (re)connect, so a failover is followed without a
/// restart). One per worker, used by that worker only.
final class RedisEndpointSource {
    private let config: Config
    private let fixed: RedisEndpoint
    private var discovery: SentinelDiscovery?
    private let sentinelQuery: RedisCommand?
    private let role = RedisCommand(["ROLE"])

    init(config: Config) {
        self.config = config
        fixed = config.redis
        discovery = config.sentinel.map(SentinelDiscovery.init(settings:))
        sentinelQuery = config.sentinel.map { RedisCommand(["SENTINEL", "get-master-addr-by-name", $0.primaryName]) }
    }

    /// Always `node`: a Redis Cluster node, which the slot map (not Sentinel) names.
    init(config: Config, node: RedisEndpoint) {
        self.config = config
        fixed = node
        discovery = nil
        sentinelQuery = nil
    }

    /// The most a discovery may take: one connect and one command's worth, the same as reaching a
    /// fixed Redis. A request that needs a discovery then waits at most this, plus the primary's
    /// connect, `ROLE` and its own command: within nginx's FASTCGI_TIMEOUT at the defaults
    /// (1.5 + 0.5 + 1 + 1 s against 5 s).
    var discoveryBudgetMS: Int { config.redisConnectTimeoutMS + config.redisTimeoutMS }

    /// True when the primary is found through Sentinel.
    var followsSentinel: Bool { discovery != nil }

    /// The address to connect to now. With Sentinel: the first Sentinel (in turn) that names the
    /// primary; unreachable ones are skipped within the connect timeout. The whole discovery
    /// takes at most ``discoveryBudgetMS``, each Sentinel's timeouts cut to what is left.
    func endpoint() throws(RedisError) -> RedisEndpoint {
        guard var discovery, let sentinelQuery, let settings = config.sentinel else { return fixed }
        let outcome = discovery.discover(budgetNS: UInt64(discoveryBudgetMS) * 1_000_000, clock: MonotonicClock.now) {
            (sentinel, remainingNS) throws(RedisError) -> RedisReply in
            let remainingMS = max(1, Int(remainingNS / 1_000_000))
            let target = RedisConnection.Target(sentinel: sentinel, settings: settings, config: config, withinMS: remainingMS)
            let connection = try RedisConnection.connect(to: target)
            return try connection.run(sentinelQuery)
        }
        self.discovery = discovery
        switch outcome {
        case .primary(let address, _):
            return .tcp(host: address.host, port: address.port)
        case .failed(let reasons):
            throw .connect("no Sentinel named the primary \(settings.primaryName) (\(reasons.joined(separator: "; ")))")
        }
    }

    /// With Sentinel, checks that a fresh connection reached the primary: during a failover a
    /// Sentinel may still name the old one, now a replica. Without Sentinel there is nothing to check.
    func verify(_ connection: RedisConnection, at endpoint: RedisEndpoint) throws(RedisError) {
        guard followsSentinel else { return }
        let reply = try connection.run(role)
        guard let role = SentinelDiscovery.role(from: reply) else {
            throw .io("ROLE gave no role: \(reply)")
        }
        guard role == "master" else { throw .connect("\(endpoint) is a \(role), not the primary") }
    }
}
