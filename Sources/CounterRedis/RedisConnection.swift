private import CHiredis
import CounterCore
#if canImport(Glibc)
import Glibc
#endif

/// Why talking to Redis failed. Any of these means the connection can no longer be trusted.
enum RedisError: Error, Equatable {
    /// Could not connect (refused, unreachable, timed out, name not resolved).
    case connect(String)
    /// `step` (AUTH or SELECT) was refused with Redis's error `reply`; what that means (a setting to
    /// fix, or a passing server state) is ``RedisErrorReply/init(handshakeReply:)``'s to say.
    case handshake(step: String, reply: String)
    /// Reading or writing a command failed, or timed out.
    case io(String)
}

/// A Redis command encoded once in Redis's wire format (``RedisWire``), so running it hands
/// hiredis finished bytes: the commands of the hot path are the same on every request, and
/// formatting an argv each time would redo the same work per request (docs/performance.md).
struct RedisCommand {
    /// The bytes as sent. An array: a fixed command's storage is shared by every copy, and a
    /// per-request one (``RedisWire/keyCommand(_:_:_:_:argument:into:)``) is handed over without a copy.
    private let encoded: [UInt8]

    /// The command name and arguments, binary safe (``RedisWire``).
    init(_ words: [String]) {
        encoded = RedisWire.encode(words)
    }

    /// A command already in wire format (``RedisWire/keyCommand(_:_:_:_:argument:into:)``).
    init(encoded bytes: [UInt8]) {
        encoded = bytes
    }

    /// Calls `body` with the encoded command, as `redisAppendFormattedCommand` takes it.
    fileprivate func withWire<T>(_ body: (UnsafePointer<CChar>?, Int) throws(RedisError) -> T) throws(RedisError) -> T {
        let result: Result<T, RedisError> = encoded.withUnsafeBytes { raw in
            Result { () throws(RedisError) -> T in try body(raw.baseAddress?.assumingMemoryBound(to: CChar.self), raw.count) }
        }
        return try result.get()
    }
}

/// The one owner of a hiredis `redisContext`: connects (with both timeouts set), runs commands,
/// and frees the context in `deinit`. Used by one worker thread only; after any error the owner
/// drops it and makes a new one, since hiredis leaves a failed context unusable.
final class RedisConnection {
    private let context: UnsafeMutablePointer<redisContext>

    private init(context: UnsafeMutablePointer<redisContext>) {
        self.context = context
    }

    deinit {
        redisFree(context)
    }

    /// Where and how to connect: an address, the two timeouts, and the handshake.
    struct Target {
        var endpoint: RedisEndpoint
        var connectTimeoutMS: Int
        var timeoutMS: Int
        var username: String?
        var password: String?
        var db: Int

        /// The data Redis of `config`, at `endpoint` (the fixed one, or what Sentinel named).
        init(config: Config, endpoint: RedisEndpoint) {
            self.endpoint = endpoint
            connectTimeoutMS = config.redisConnectTimeoutMS
            timeoutMS = config.redisTimeoutMS
            username = config.redisUsername
            password = config.redisPassword
            db = config.redisDB
        }

        /// A Sentinel, with Sentinel's own credentials and no database; both timeouts at most
        /// `withinMS` (what is left of the discovery's budget).
        init(sentinel: HostPort, settings: SentinelSettings, config: Config, withinMS: Int) {
            endpoint = .tcp(host: sentinel.host, port: sentinel.port)
            connectTimeoutMS = min(config.redisConnectTimeoutMS, withinMS)
            timeoutMS = min(config.redisTimeoutMS, withinMS)
            username = settings.username
            password = settings.password
            db = 0
        }
    }

    /// Connects, sets the command timeout (hiredis 0.14 applies the connect timeout only to
    /// connect, and does not re-apply a command timeout on reconnect, so each new context gets
    /// it here), then authenticates and selects the database.
    static func connect(to target: Target) throws(RedisError) -> RedisConnection {
        let connectTimeout = timeval(milliseconds: target.connectTimeoutMS)
        let raw: UnsafeMutablePointer<redisContext>?
        switch target.endpoint {
        case .tcp(let host, let port):
            raw = redisConnectWithTimeout(host, Int32(port), connectTimeout)
        case .unix(let path):
            raw = redisConnectUnixWithTimeout(path, connectTimeout)
        }
        guard let raw else { throw .connect("out of memory") }
        if raw.pointee.err != 0 {
            let reason = RedisConnection.errorText(raw)
            redisFree(raw)
            throw .connect(reason)
        }
        let connection = RedisConnection(context: raw)
        guard redisSetTimeout(raw, timeval(milliseconds: target.timeoutMS)) == REDIS_OK else {
            throw .connect("cannot set the command timeout: \(RedisConnection.errorText(raw))")
        }
        if case .tcp = target.endpoint {
            // Detects a vanished peer (node lost without a FIN) on idle connections.
            _ = redisEnableKeepAlive(raw)
        }
        if let password = target.password {
            let words = target.username.map { ["AUTH", $0, password] } ?? ["AUTH", password]
            if case .error(let message) = try connection.run(RedisCommand(words)) {
                // Redis's own text (WRONGPASS, NOAUTH...) names the problem and holds no secret.
                throw .handshake(step: "AUTH", reply: message)
            }
        }
        if target.db != 0 {
            if case .error(let message) = try connection.run(RedisCommand(["SELECT", String(target.db)])) {
                throw .handshake(step: "SELECT \(target.db)", reply: message)
            }
        }
        return connection
    }

    /// Sends `commands` together and reads their replies in order: one round trip (a write and its
    /// `WAIT`, for instance).
    func run(_ commands: [RedisCommand]) throws(RedisError) -> [RedisReply] {
        for command in commands {
            try command.withWire { bytes, count throws(RedisError) in
                guard redisAppendFormattedCommand(context, bytes, count) == REDIS_OK else {
                    throw .io(RedisConnection.errorText(context))
                }
            }
        }
        var replies: [RedisReply] = []
        replies.reserveCapacity(commands.count)
        for _ in commands {
            var raw: UnsafeMutableRawPointer?
            guard redisGetReply(context, &raw) == REDIS_OK, let raw else { throw .io(RedisConnection.errorText(context)) }
            defer { freeReplyObject(raw) }
            replies.append(RedisConnection.convert(raw.assumingMemoryBound(to: redisReply.self)))
        }
        return replies
    }

    /// Sends `command` and waits for its reply, bounded by the command timeout.
    func run(_ command: RedisCommand) throws(RedisError) -> RedisReply {
        try command.withWire { bytes, count throws(RedisError) in
            guard redisAppendFormattedCommand(context, bytes, count) == REDIS_OK else { throw .io(RedisConnection.errorText(context)) }
        }
        var raw: UnsafeMutableRawPointer?
        guard redisGetReply(context, &raw) == REDIS_OK, let raw else {
            throw .io(RedisConnection.errorText(context))
        }
        defer { freeReplyObject(raw) }
        return RedisConnection.convert(raw.assumingMemoryBound(to: redisReply.self))
    }

    /// True when the server has closed this connection (or sent something unasked) while it sat
    /// idle, e.g. after a Redis restart. Checked before each command so that a stale connection
    /// is replaced before a write is sent on it, rather than failing a request that Redis never saw.
    var isStale: Bool {
        var entry = pollfd(fd: context.pointee.fd, events: Int16(POLLIN) | Int16(truncatingIfNeeded: 0x2000 /* POLLRDHUP */), revents: 0)
        let ready = poll(&entry, 1, 0)
        return ready != 0
    }

    private static func convert(_ reply: UnsafeMutablePointer<redisReply>) -> RedisReply {
        let value = reply.pointee
        switch value.type {
        case REDIS_REPLY_INTEGER:
            return .integer(Int64(value.integer))
        case REDIS_REPLY_STRING:
            return .string(bytes(value.str, value.len))
        case REDIS_REPLY_STATUS:
            return .status(String(decoding: bytes(value.str, value.len), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            return .error(String(decoding: bytes(value.str, value.len), as: UTF8.self))
        case REDIS_REPLY_ARRAY:
            var elements: [RedisReply] = []
            for index in 0..<Int(value.elements) {
                if let element = value.element[index] { elements.append(convert(element)) }
            }
            return .array(elements)
        default:
            return .null
        }
    }

    private static func bytes(_ pointer: UnsafeMutablePointer<CChar>?, _ length: Int) -> [UInt8] {
        guard let pointer, length > 0 else { return [] }
        return pointer.withMemoryRebound(to: UInt8.self, capacity: length) { Array(UnsafeBufferPointer(start: $0, count: length)) }
    }

    private static func errorText(_ context: UnsafeMutablePointer<redisContext>) -> String {
        let text = withUnsafeBytes(of: context.pointee.errstr) { buffer in
            String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self)
        }
        if context.pointee.err == REDIS_ERR_IO, text.isEmpty || text == "Resource temporarily unavailable" {
            // hiredis reports a socket timeout as EAGAIN's text; say what it means.
            return "timed out"
        }
        return text.isEmpty ? "error \(context.pointee.err)" : text
    }
}

private extension timeval {
    init(milliseconds: Int) {
        self.init(tv_sec: milliseconds / 1000, tv_usec: (milliseconds % 1000) * 1000)
    }
}
