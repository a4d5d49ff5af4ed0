#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Every setting of the responder, read once at start and then only passed around.
///
/// Precedence: flag > environment variable > default. Names follow the original Flask service
/// (`REDIS_HOST`, `REDIS_PORT`, `REDIS_DB`, `REDIS_PASSWORD`, `DEBUG`; docs/DESIGN.md). nginx-side
/// settings (`PORT`, `API_KEY`, `API_KEYS_FILE`) are not read here: keys never reach this process.
public struct Config: Sendable, Equatable {
    /// The one Redis, when there is no Sentinel (`REDIS_HOST`, `REDIS_PORT`).
    public var redis: RedisEndpoint
    /// The Sentinels to ask for the primary (`REDIS_SENTINELS`); nil: the fixed `redis` address.
    public var sentinel: SentinelSettings?
    /// The Redis Cluster's nodes to read the slot map from first (`REDIS_CLUSTER_NODES`); nil: not a
    /// cluster. Exclusive with Sentinel and with an explicit `REDIS_HOST`.
    public var clusterNodes: [HostPort]?
    /// Replicas that must acknowledge each write before it is answered 200 (`WAIT`); 0: no WAIT.
    public var waitReplicas: Int
    /// How long a write waits for those acknowledgements (`WAIT`'s timeout).
    public var waitTimeoutMS: Int
    /// The Redis database number (`REDIS_DB`).
    public var redisDB: Int
    /// The Redis ACL user (`REDIS_USERNAME`); nil: the default user.
    public var redisUsername: String?
    /// The Redis password (`REDIS_PASSWORD` or `REDIS_PASSWORD_FILE`); nil: no AUTH.
    public var redisPassword: String?
    /// The bound on each Redis connect (`REDIS_CONNECT_TIMEOUT_MS`).
    public var redisConnectTimeoutMS: Int
    /// The bound on each Redis command (`REDIS_TIMEOUT_MS`).
    public var redisTimeoutMS: Int
    /// The Redis key that holds the counter (`COUNTER_KEY`).
    public var counterKey: String
    /// Where FastCGI connections are accepted (`FCGI_LISTEN`).
    public var listen: ListenAddress
    /// Worker threads, each with one Redis connection (`FCGI_THREADS`).
    public var threads: Int
    /// The listening socket's backlog (`FCGI_BACKLOG`).
    public var backlog: Int
    /// How long a worker waits on a FastCGI connection that stalls mid-request (`FCGI_IO_TIMEOUT_MS`).
    public var ioTimeoutMS: Int
    /// How long a stop may take to answer what is in hand (`SHUTDOWN_TIMEOUT_MS`).
    public var shutdownTimeoutMS: Int
    /// How long an idempotency record is kept (`IDEMPOTENCY_TTL_SECONDS`).
    public var idempotencyTTLSeconds: Int
    /// Where nginx sends one datagram per request it answers itself (`EDGE_LOG_ADDRESS`); nil: off.
    public var edgeLogAddress: EdgeLogAddress?
    /// Debug logging, a line per request (`DEBUG`).
    public var debug: Bool

    /// Worker threads when `FCGI_THREADS` is unset. Chosen by measurement behind nginx on two
    /// cores with kept connections (docs/performance.md): 32 threads gave the same throughput as
    /// 16 with half the slowest request times, as no ready request waits for a free worker.
    public static let defaultThreads = 32

    /// Resolves every setting, or names the first invalid one.
    public init(options: Options? = nil, environment: [String: String],
                readFile: (String) -> String? = Config.readSmallFile) throws(ConfigError) {
        var source = Source(environment: environment)

        let host = source.string(options?.redisHost, env: "REDIS_HOST", flag: "--redis-host") ?? "localhost"
        if host.hasPrefix("/") {
            _ = try source.integer(options?.redisPort, env: "REDIS_PORT", flag: "--redis-port", in: 1...65535, default: 6379)
            redis = .unix(path: host)
        } else {
            guard !host.isEmpty else { throw ConfigError(setting: source.last, value: host, reason: "must not be empty") }
            let port = try source.integer(options?.redisPort, env: "REDIS_PORT", flag: "--redis-port", in: 1...65535, default: 6379)
            redis = .tcp(host: host, port: port)
        }
        redisDB = try source.integer(options?.redisDB, env: "REDIS_DB", flag: "--redis-db", in: 0...Int(Int32.max), default: 0)
        redisUsername = source.string(options?.redisUsername, env: "REDIS_USERNAME", flag: "--redis-username").flatMap { $0.isEmpty ? nil : $0 }
        redisPassword = source.string(options?.redisPassword, env: "REDIS_PASSWORD", flag: "--redis-password").flatMap { $0.isEmpty ? nil : $0 }
        if redisPassword == nil, let path = environment["REDIS_PASSWORD_FILE"], !path.isEmpty {
            redisPassword = try Config.secret(fromFile: path, setting: "REDIS_PASSWORD_FILE", readFile: readFile)
        }
        if redisUsername != nil, redisPassword == nil {
            throw ConfigError(setting: "REDIS_USERNAME", value: redisUsername, reason: "needs REDIS_PASSWORD as well (AUTH user password)")
        }
        redisConnectTimeoutMS = try source.integer(options?.redisConnectTimeoutMS, env: "REDIS_CONNECT_TIMEOUT_MS",
                                                   flag: "--redis-connect-timeout-ms", in: 1...60_000, default: 500)
        redisTimeoutMS = try source.integer(options?.redisTimeoutMS, env: "REDIS_TIMEOUT_MS",
                                            flag: "--redis-timeout-ms", in: 1...60_000, default: 1000)

        let hostGiven = options?.redisHost != nil || !(environment["REDIS_HOST"] ?? "").isEmpty
        sentinel = try Config.sentinelSettings(options: options, source: &source, readFile: readFile)
        if let list = source.string(options?.redisClusterNodes, env: "REDIS_CLUSTER_NODES", flag: "--redis-cluster-nodes") {
            // Three ways to find Redis; exactly one is used, so mixing them is a mistake to report.
            let setting = source.last
            clusterNodes = try Config.hostPortList(list, setting: setting)
            if sentinel != nil {
                throw ConfigError(setting: setting, value: list, reason: "and REDIS_SENTINELS select different modes (cluster, Sentinel): set one")
            }
            if hostGiven {
                throw ConfigError(setting: setting, value: list, reason: "and REDIS_HOST select different modes (cluster, one server): set one")
            }
            if redisDB != 0 {
                throw ConfigError(setting: "REDIS_DB", value: String(redisDB), reason: "must be 0 with REDIS_CLUSTER_NODES: a cluster has database 0 only")
            }
        }
        waitReplicas = try source.integer(options?.redisWaitReplicas, env: "REDIS_WAIT_REPLICAS",
                                          flag: "--redis-wait-replicas", in: 0...16, default: 0)
        waitTimeoutMS = try source.integer(options?.redisWaitTimeoutMS, env: "REDIS_WAIT_TIMEOUT_MS",
                                           flag: "--redis-wait-timeout-ms", in: 1...10_000, default: 300)
        // WAIT must give up before the command timeout does, or a slow acknowledgement would look
        // like a broken connection instead of a shortfall.
        if waitReplicas > 0, waitTimeoutMS >= redisTimeoutMS {
            throw ConfigError(setting: source.last, value: String(waitTimeoutMS),
                              reason: "must be below REDIS_TIMEOUT_MS (\(redisTimeoutMS))")
        }

        counterKey = source.string(options?.counterKey, env: "COUNTER_KEY", flag: "--counter-key") ?? "api_counter"
        if counterKey.isEmpty || counterKey.utf8.count > 512 {
            throw ConfigError(setting: source.last, value: counterKey, reason: "must be 1 to 512 bytes")
        }
        // Idempotency records share the counter's Redis Cluster hash slot through its hash tag;
        // braces that do not form one would put them elsewhere.
        if counterKey.contains("{") || counterKey.contains("}"),
           IdempotencyKey.hashTag(of: counterKey) == Substring(counterKey) {
            throw ConfigError(setting: source.last, value: counterKey,
                              reason: "braces must form a non-empty Redis Cluster hash tag, as in {counter}:hits")
        }

        listen = try Config.listenAddress(flag: options?.listen, environment: environment)
        threads = try source.integer(options?.threads, env: "FCGI_THREADS", flag: "--threads", in: 1...1024, default: Config.defaultThreads)
        backlog = try source.integer(options?.backlog, env: "FCGI_BACKLOG", flag: "--backlog", in: 1...65535, default: 1024)
        // A worker reads a request in blocking calls: a peer that connects and sends nothing (or
        // half a request) would hold it for ever. nginx sends a request whole, so a stall means
        // a broken or hostile peer.
        ioTimeoutMS = try source.integer(options?.ioTimeoutMS, env: "FCGI_IO_TIMEOUT_MS", flag: "--io-timeout-ms",
                                         in: 100...600_000, default: 5_000)
        // At least 100 ms: a stop answers what the workers hold and what nginx already sent within
        // it, so 0 would end every stop, even an idle one, past its deadline with status 1.
        shutdownTimeoutMS = try source.integer(options?.shutdownTimeoutMS, env: "SHUTDOWN_TIMEOUT_MS",
                                               flag: "--shutdown-timeout-ms", in: 100...600_000, default: 10_000)

        idempotencyTTLSeconds = try source.integer(options?.idempotencyTTLSeconds, env: "IDEMPOTENCY_TTL_SECONDS",
                                                   flag: "--idempotency-ttl-seconds", in: 1...2_592_000, default: 86_400)

        edgeLogAddress = try source.parsed(options?.edgeLogAddress, env: "EDGE_LOG_ADDRESS", flag: "--edge-log-address") {
            (text) throws(ConfigError.Reason) in try EdgeLogAddress(parsing: text)
        }

        if let flag = options?.debug ?? nil {
            debug = flag
        } else if let text = environment["DEBUG"] {
            guard let value = Config.parseBool(text) else {
                throw ConfigError(setting: "DEBUG", value: text, reason: "must be true or false (also 1/0, yes/no, on/off)")
            }
            debug = value
        } else {
            debug = false
        }
    }

    /// `REDIS_SENTINELS` and the settings that go with it; nil when it is unset.
    private static func sentinelSettings(options: Options?, source: inout Source,
                                         readFile: (String) -> String?) throws(ConfigError) -> SentinelSettings? {
        guard let list = source.string(options?.redisSentinels, env: "REDIS_SENTINELS", flag: "--redis-sentinels") else {
            return nil
        }
        let sentinels = try hostPortList(list, setting: source.last)
        let name = source.string(options?.redisSentinelName, env: "REDIS_SENTINEL_NAME", flag: "--redis-sentinel-name") ?? "counter"
        guard name.utf8.count <= 128, name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw ConfigError(setting: source.last, value: name, reason: "must be 1 to 128 printable characters without spaces")
        }
        let username = source.string(options?.redisSentinelUsername, env: "REDIS_SENTINEL_USERNAME", flag: "--redis-sentinel-username")
        var password = source.string(options?.redisSentinelPassword, env: "REDIS_SENTINEL_PASSWORD", flag: "--redis-sentinel-password")
        if password == nil, let path = source.environment["REDIS_SENTINEL_PASSWORD_FILE"], !path.isEmpty {
            password = try secret(fromFile: path, setting: "REDIS_SENTINEL_PASSWORD_FILE", readFile: readFile)
        }
        if username != nil, password == nil {
            throw ConfigError(setting: "REDIS_SENTINEL_USERNAME", value: username, reason: "needs REDIS_SENTINEL_PASSWORD as well")
        }
        return SentinelSettings(sentinels: sentinels, primaryName: name, username: username, password: password)
    }

    /// A comma-separated `host:port` list (`REDIS_SENTINELS`, `REDIS_CLUSTER_NODES`).
    private static func hostPortList(_ list: String, setting: String) throws(ConfigError) -> [HostPort] {
        var addresses: [HostPort] = []
        for entry in list.split(separator: ",", omittingEmptySubsequences: false) {
            let text = entry.trimmingSpaces
            do {
                addresses.append(try HostPort(parsing: text))
            } catch {
                throw ConfigError(setting: setting, value: list, reason: "'\(text)': \(error.text) (a comma-separated host:port list)")
            }
        }
        return addresses
    }

    /// A secret from a file (Docker and Kubernetes secrets); a trailing newline is not part of it.
    private static func secret(fromFile path: String, setting: String, readFile: (String) -> String?) throws(ConfigError) -> String {
        guard let text = readFile(path) else {
            throw ConfigError(setting: setting, value: path, reason: "cannot be read")
        }
        let secret = String(text.reversed().drop { $0 == "\n" || $0 == "\r" }.reversed())
        guard !secret.isEmpty else { throw ConfigError(setting: setting, value: path, reason: "is empty") }
        return secret
    }

    /// Reads a file of at most 64 KiB as UTF-8 (secrets are short), or nil.
    public static func readSmallFile(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var bytes = [UInt8](repeating: 0, count: 65_536)
        let count = fread(&bytes, 1, bytes.count, file)
        guard ferror(file) == 0 else { return nil }
        return String(decoding: bytes[..<count], as: UTF8.self)
    }

    /// `FCGI_LISTEN` (or `--listen`) alone: what `counter-fcgi probe` needs, by the same rules.
    /// `flagName` is the flag's name in error lines (the probe calls it `--address`).
    public static func listenAddress(flag: String?, flagName: String = "--listen",
                                     environment: [String: String]) throws(ConfigError) -> ListenAddress {
        var source = Source(environment: environment)
        return try source.parsed(flag, env: "FCGI_LISTEN", flag: flagName) { (text) throws(ConfigError.Reason) in
            try ListenAddress(parsing: text)
        } ?? .unix(path: Config.runtimeDirectory(environment) + "/counter-fcgi.sock")
    }

    /// Where the default socket goes: systemd's `RUNTIME_DIRECTORY` (its first entry), else
    /// `XDG_RUNTIME_DIR`, else /tmp. nginx/render.sh applies the same rule for nginx's side; an
    /// integration test runs both under each case and checks they agree.
    static func runtimeDirectory(_ environment: [String: String]) -> String {
        if let dir = environment["RUNTIME_DIRECTORY"]?.split(separator: ":", omittingEmptySubsequences: false).first,
           !dir.isEmpty { return String(dir) }
        if let dir = environment["XDG_RUNTIME_DIR"], !dir.isEmpty { return dir }
        return "/tmp"
    }

    static func parseBool(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "1", "true", "yes", "on": true
        case "0", "false", "no", "off", "": false
        default: nil
        }
    }

    /// A decimal integer within `range`; the reason names the range.
    static func parseInteger(_ text: String, in range: ClosedRange<Int>, what: String = "value") throws(ConfigError.Reason) -> Int {
        let digits = text.utf8.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
        guard digits, let value = Int(text), range.contains(value) else {
            throw .init("\(what) must be an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    /// The effective settings for the start-up log line; the password is never included.
    public var logSummary: [String: String] {
        [
            "redis": clusterNodes != nil ? "cluster" : sentinel == nil ? redis.description : "sentinel",
            "redis.cluster_nodes": clusterNodes?.map(\.description).joined(separator: ",") ?? "",
            "redis.sentinels": sentinel?.sentinels.map(\.description).joined(separator: ",") ?? "",
            "redis.sentinel_name": sentinel?.primaryName ?? "",
            "redis.sentinel_password": sentinel?.password == nil ? "unset" : "set",
            "redis.wait_replicas": String(waitReplicas),
            "redis.wait_timeout_ms": String(waitTimeoutMS),
            "redis.db": String(redisDB),
            "redis.username": redisUsername ?? "",
            "redis.password": redisPassword == nil ? "unset" : "set",
            "redis.connect_timeout_ms": String(redisConnectTimeoutMS),
            "redis.timeout_ms": String(redisTimeoutMS),
            "counter_key": counterKey,
            "listen": listen.description,
            "threads": String(threads),
            "backlog": String(backlog),
            "io_timeout_ms": String(ioTimeoutMS),
            "shutdown_timeout_ms": String(shutdownTimeoutMS),
            "idempotency_ttl_seconds": String(idempotencyTTLSeconds),
            "edge_log_address": edgeLogAddress?.description ?? "off",
            "debug": String(debug),
        ]
    }
}

/// Picks flag over variable and remembers which one a value came from, for the error line.
private extension Substring {
    var trimmingSpaces: String { String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed()) }
}

private struct Source {
    let environment: [String: String]
    private(set) var last = ""

    init(environment: [String: String]) { self.environment = environment }

    mutating func string(_ flagValue: String?, env: String, flag: String) -> String? {
        if let flagValue { last = flag; return flagValue }
        last = env
        // An empty variable counts as unset: compose files and manifests often carry `NAME=`.
        guard let value = environment[env], !value.isEmpty else { return nil }
        return value
    }

    /// The value parsed by `parse`, or nil when unset; a parse error names the setting.
    mutating func parsed<Value>(_ flagValue: String?, env: String, flag: String,
                                _ parse: (String) throws(ConfigError.Reason) -> Value) throws(ConfigError) -> Value? {
        guard let text = string(flagValue, env: env, flag: flag) else { return nil }
        do {
            return try parse(text)
        } catch {
            throw ConfigError(setting: last, value: text, reason: error.text)
        }
    }

    mutating func integer(_ flagValue: String?, env: String, flag: String, in range: ClosedRange<Int>, default fallback: Int) throws(ConfigError) -> Int {
        try parsed(flagValue, env: env, flag: flag) { (text) throws(ConfigError.Reason) in
            try Config.parseInteger(text, in: range)
        } ?? fallback
    }
}
