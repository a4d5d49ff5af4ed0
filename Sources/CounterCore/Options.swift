import ArgumentParser

/// The command-line flags. Each mirrors an environment variable and wins over it; both fall back
/// to the defaults in ``Config``. Values stay strings here so flag and variable share one parser
/// and one error message (``Config/init(options:environment:)``).
public struct Options: ParsableArguments, Sendable {
    @Option(name: .customLong("redis-host"), help: "Redis host, or a unix socket path starting with / (REDIS_HOST; default localhost).")
    public var redisHost: String?

    @Option(name: .customLong("redis-port"), help: "Redis TCP port (REDIS_PORT; default 6379).")
    public var redisPort: String?

    @Option(name: .customLong("redis-db"), help: "Redis database number (REDIS_DB; default 0).")
    public var redisDB: String?

    @Option(name: .customLong("redis-username"), help: "Redis ACL user for AUTH (REDIS_USERNAME; needs a password).")
    public var redisUsername: String?

    @Option(name: .customLong("redis-password"), help: "Redis password for AUTH (REDIS_PASSWORD, or a file named by REDIS_PASSWORD_FILE). Prefer those: flags show in ps.")
    public var redisPassword: String?

    @Option(name: .customLong("redis-sentinels"), help: "Comma-separated host:port list of Sentinels to ask for the primary; when set, the Redis host and port are not used (REDIS_SENTINELS; default unset).")
    public var redisSentinels: String?

    @Option(name: .customLong("redis-cluster-nodes"), help: "Comma-separated host:port list of Redis Cluster nodes to read the slot map from; selects cluster mode, exclusive with the Sentinels and the Redis host (REDIS_CLUSTER_NODES; default unset).")
    public var redisClusterNodes: String?

    @Option(name: .customLong("redis-sentinel-name"), help: "The primary's name in Sentinel (REDIS_SENTINEL_NAME; default counter).")
    public var redisSentinelName: String?

    @Option(name: .customLong("redis-sentinel-username"), help: "Sentinel's own ACL user (REDIS_SENTINEL_USERNAME; needs its password).")
    public var redisSentinelUsername: String?

    @Option(name: .customLong("redis-sentinel-password"), help: "Sentinel's own password (REDIS_SENTINEL_PASSWORD, or a file named by REDIS_SENTINEL_PASSWORD_FILE).")
    public var redisSentinelPassword: String?

    @Option(name: .customLong("redis-wait-replicas"), help: "Replicas that must acknowledge each write before it is answered 200, 0 to 16 (REDIS_WAIT_REPLICAS; default 0: off).")
    public var redisWaitReplicas: String?

    @Option(name: .customLong("redis-wait-timeout-ms"), help: "How long a write waits for those acknowledgements, in ms, below the command timeout (REDIS_WAIT_TIMEOUT_MS; default 300).")
    public var redisWaitTimeoutMS: String?

    @Option(name: .customLong("redis-connect-timeout-ms"), help: "Bound on each Redis connect, in ms (REDIS_CONNECT_TIMEOUT_MS; default 500).")
    public var redisConnectTimeoutMS: String?

    @Option(name: .customLong("redis-timeout-ms"), help: "Bound on each Redis command, in ms (REDIS_TIMEOUT_MS; default 1000).")
    public var redisTimeoutMS: String?

    @Option(name: .customLong("counter-key"), help: "The Redis key that holds the counter (COUNTER_KEY; default api_counter).")
    public var counterKey: String?

    @Option(name: .customLong("listen"), help: "unix:/path or tcp:host:port (FCGI_LISTEN; default unix:<runtime dir>/counter-fcgi.sock).")
    public var listen: String?

    @Option(name: .customLong("threads"), help: "FastCGI worker threads, each with one Redis connection (FCGI_THREADS; default 32).")
    public var threads: String?

    @Option(name: .customLong("backlog"), help: "Listen backlog of the FastCGI socket (FCGI_BACKLOG; default 1024).")
    public var backlog: String?

    @Option(name: .customLong("io-timeout-ms"), help: "How long a FastCGI connection may stall in the middle of a request, reading or writing, before it is closed, in ms (FCGI_IO_TIMEOUT_MS; default 5000).")
    public var ioTimeoutMS: String?

    @Option(name: .customLong("shutdown-timeout-ms"), help: "How long requests in hand may finish after SIGTERM, in ms (SHUTDOWN_TIMEOUT_MS; default 10000).")
    public var shutdownTimeoutMS: String?

    @Option(name: .customLong("idempotency-ttl-seconds"), help: "How long an Idempotency-Key's first response is kept (IDEMPOTENCY_TTL_SECONDS; default 86400).")
    public var idempotencyTTLSeconds: String?

    @Option(name: .customLong("edge-log-address"), help: "Loopback host:port (UDP) on which nginx reports the requests it answers itself, counted in counter_edge_requests_total (EDGE_LOG_ADDRESS; default off).")
    public var edgeLogAddress: String?

    @Flag(name: .customLong("debug"), inversion: .prefixedNo, help: "Debug logging, one line per request (DEBUG; default false).")
    public var debug: Bool?

    /// Required by `ParsableArguments`; use `Options.parse(_:)` to get values.
    public init() {}
}
