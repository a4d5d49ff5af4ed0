/// What the router needs of a request: copied out of the FastCGI params by the server.
public struct RequestHead: Sendable, Equatable {
    /// `REQUEST_METHOD`, as sent.
    public var method: String
    /// The path without query string (nginx's `DOCUMENT_URI`, already normalised by nginx).
    public var path: String
    /// `CONTENT_LENGTH` as sent; `nil` or empty when there is no body.
    public var contentLength: String?
    /// The `Idempotency-Key` header as sent (writes only).
    public var idempotencyKey: String?
    /// Who is calling: the API key's name that nginx passes (`API_KEY_NAME`).
    public var client: String
    /// What only the named-counter routes read; nil for the original routes, so their requests
    /// carry (and copy) nothing more than before named counters.
    public var named: NamedParts?

    /// The query string (`QUERY_STRING`, without `?`); read by the named-counter routes only.
    public var query: String { named?.query ?? "" }
    /// The body's media type as sent (`CONTENT_TYPE`); checked where a body is taken (PUT).
    public var contentType: String? { named?.contentType }
    /// The request body, at most the router's ``Router/maxBodyBytes`` (PUT reads it).
    public var body: [UInt8] { named?.body ?? [] }
    /// The names this caller's key may use (`API_KEY_PREFIX`, the key's `ns=`); empty: all.
    public var namespace: CounterPrefix { named?.namespace ?? .none }

    /// A request head from its parts (tests; the server copies them from the FastCGI params).
    public init(method: String, path: String, contentLength: String? = nil, idempotencyKey: String? = nil, client: String = "-",
                named: NamedParts? = nil) {
        self.method = method
        self.path = path
        self.contentLength = contentLength
        self.idempotencyKey = idempotencyKey
        self.client = client
        self.named = named
    }
}

/// The parts of a request that only the named-counter routes (`/v1/counters`) read. A class of
/// constants: the request head is passed and copied on the way through the router, and one
/// reference is cheaper to copy than seven fields.
public final class NamedParts: Sendable, Equatable {
    /// The query string, without `?`.
    public let query: String
    /// The body's media type as sent.
    public let contentType: String?
    /// The request body (PUT), at most the router's ``Router/maxBodyBytes``.
    public let body: [UInt8]
    /// The names the caller's key may use.
    public let namespace: CounterPrefix
    /// The operator's public prefix this path's name is under (`PUBLIC_COUNTERS`, matched by
    /// nginx); nil when the name is not public. A public badge may be kept by shared caches.
    public let publicPrefix: CounterPrefix?
    /// The operator's hit-counter prefix this path's name is under (`PUBLIC_HIT_COUNTERS`, matched
    /// by nginx); nil when its badge may not count (`count=1`).
    public let hitPrefix: CounterPrefix?
    /// The `If-None-Match` header as sent (badges: a cache revalidating its copy).
    public let ifNoneMatch: String?

    /// The parts from their values.
    public init(query: String = "", contentType: String? = nil, body: [UInt8] = [], namespace: CounterPrefix = .none,
                publicPrefix: CounterPrefix? = nil, hitPrefix: CounterPrefix? = nil, ifNoneMatch: String? = nil) {
        self.query = query
        self.contentType = contentType
        self.body = body
        self.namespace = namespace
        self.publicPrefix = publicPrefix
        self.hitPrefix = hitPrefix
        self.ifNoneMatch = ifNoneMatch
    }

    /// A request with none of the parts (no query, type, namespace, operator prefix or
    /// revalidation): most named requests, which then share this one instead of allocating.
    public static let empty = NamedParts()

    /// The same parts with `body` (the server reads a PUT's body after the head).
    public func with(body: [UInt8]) -> NamedParts {
        NamedParts(query: query, contentType: contentType, body: body, namespace: namespace, publicPrefix: publicPrefix,
                   hitPrefix: hitPrefix, ifNoneMatch: ifNoneMatch)
    }

    public static func == (lhs: NamedParts, rhs: NamedParts) -> Bool {
        lhs.query == rhs.query && lhs.contentType == rhs.contentType && lhs.body == rhs.body && lhs.namespace == rhs.namespace
            && lhs.publicPrefix == rhs.publicPrefix && lhs.hitPrefix == rhs.hitPrefix && lhs.ifNoneMatch == rhs.ifNoneMatch
    }
}

/// The API's endpoints and the methods each one takes.
public enum Route: String, CaseIterable, Sendable {
    case health = "/health"
    case livez = "/livez"
    case read = "/read"
    case write = "/write"
    case reset = "/reset"

    /// The methods this route answers, in the order the `Allow` header lists them.
    public var methods: [String] {
        switch self {
        case .health, .livez, .read: Route.readMethods
        case .write, .reset: Route.writeMethods
        }
    }

    /// The route whose path is `path`, exactly; nil for any other. `Route(rawValue:)` compares
    /// with each case in turn through the standard library's string switch, a large share of
    /// routing a request; the paths are short, so their length picks one candidate and one
    /// comparison of two small strings (their bits) settles it.
    public init?(path: String) {
        let candidate: Route
        switch path.utf8.count {
        case 5: candidate = .read
        case 6:
            switch path.utf8.last {
            case UInt8(ascii: "e"): candidate = .write
            case UInt8(ascii: "t"): candidate = .reset
            default: candidate = .livez
            }
        case 7: candidate = .health
        default: return nil
        }
        guard path == candidate.rawValue else { return nil }
        self = candidate
    }

    // Shared arrays: `methods` runs on every request and must not allocate.
    private static let readMethods = ["GET", "HEAD"]
    private static let writeMethods = ["POST"]
}

/// What a request was for, as the metrics label it.
public enum Endpoint: Sendable, Equatable {
    /// One of the API's routes.
    case api(Route)
    /// One of the named-counter routes (labelled by its template, never by a counter's name).
    case counters(CounterRoute)
    /// The Prometheus exposition (`GET /metrics`), which nginx's internal metrics server alone
    /// sends here; not an API request, so not counted as one.
    case metrics
    /// No route: an unknown path.
    case unknown
}

/// The router's answer: the response, and what the caller's metrics need to know of it.
public struct Routed: Sendable, Equatable {
    /// What to send.
    public var response: Response
    /// What the request was for, as the metrics label it.
    public var endpoint: Endpoint
    /// A write answered from its idempotency record, not done again.
    public var replayed: Bool
}

/// Dispatches a request to a counter operation and builds the response.
///
/// Pure: no I/O of its own beyond the ``CounterStore`` it is handed and the metrics exposition
/// it is given, so the whole method x path x status matrix is tested without FastCGI, nginx or Redis.
public struct Router: Sendable {
    /// The largest request body accepted (and ignored): the API takes none, but some clients send
    /// `{}` or an empty form with a POST.
    public let maxBodyBytes: Int
    let clock: @Sendable () -> Timestamp
    private let exposition: (@Sendable () -> Response)?

    /// A router that stamps bodies with `clock` (tests pass a fixed one) and answers `GET /metrics`
    /// with `exposition` (nil: /metrics is an unknown path).
    public init(maxBodyBytes: Int = 1024, clock: @escaping @Sendable () -> Timestamp = Timestamp.now,
                exposition: (@Sendable () -> Response)? = nil) {
        self.maxBodyBytes = maxBodyBytes
        self.clock = clock
        self.exposition = exposition
    }

    /// The path of the metrics exposition.
    public static let metricsPath = "/metrics"

    /// The response to `request`, never throwing: every failure becomes a problem response.
    public func respond(to request: RequestHead, store: some CounterStore) -> Response {
        route(request, store: store).response
    }

    /// The response to `request` and what it was (``Routed``), never throwing.
    public func route(_ request: RequestHead, store: some CounterStore) -> Routed {
        // The original routes first: their exact match costs what it did before named counters.
        guard let route = Route(path: request.path) else {
            if let routed = routeCounters(request, store: store) { return routed }
            if request.path == Router.metricsPath, let exposition {
                guard request.method == "GET" else {
                    return Routed(response: APIError.methodNotAllowed(path: Router.metricsPath, allowed: ["GET"]).response,
                                  endpoint: .metrics, replayed: false)
                }
                return Routed(response: exposition(), endpoint: .metrics, replayed: false)
            }
            return Routed(response: APIError.notFound.response, endpoint: .unknown, replayed: false)
        }
        do {
            let (response, replayed) = try dispatch(request, route: route, store: store)
            return Routed(response: response, endpoint: .api(route), replayed: replayed)
        } catch {
            return Routed(response: error.response, endpoint: .api(route), replayed: false)
        }
    }

    private func dispatch(_ request: RequestHead, route: Route, store: some CounterStore) throws(APIError) -> (Response, Bool) {
        guard route.methods.contains(request.method) else {
            throw .methodNotAllowed(path: route.rawValue, allowed: route.methods)
        }
        try checkBody(request.contentLength)
        do {
            switch route {
            case .livez:
                var body = JSONObject(capacity: 24)
                body.add("status", "alive")
                return (ok(body), false)
            case .health:
                return (health(store), false)
            case .read:
                let value = try store.read()
                var body = JSONObject(capacity: 48)
                body.add("value", value)
                body.add("timestamp", clock())
                return (ok(body), false)
            case .write:
                let outcome = try store.increment(idempotency: try idempotency(request), now: clock())
                return (written(outcome, .increment), outcome.replayed)
            case .reset:
                let outcome = try store.reset(idempotency: try idempotency(request), now: clock())
                return (written(outcome, .reset), outcome.replayed)
            }
        } catch let error as CounterError {
            throw .counter(error)
        } catch let error as APIError {
            throw error
        } catch {
            throw .counter(.unexpected(message: "\(error)"))
        }
    }

    /// The body of a write, the same for a first response and its replays (which say so in a header).
    private func written(_ outcome: WriteOutcome, _ operation: WriteOperation) -> Response {
        var body = JSONObject(capacity: 72)
        body.add("value", outcome.value)
        body.add("operation", operation.rawValue)
        body.add("timestamp", outcome.timestamp)
        var response = ok(body)
        if outcome.replayed { response.headers.append(("Idempotent-Replayed", "true")) }
        return response
    }

    func idempotency(_ request: RequestHead) throws(APIError) -> IdempotencyKey? {
        guard let header = request.idempotencyKey, !header.isEmpty else { return nil }
        guard let key = IdempotencyKey(header: header, client: request.client) else {
            throw .badRequest(detail: "Invalid Idempotency-Key: expected 1 to \(IdempotencyKey.maxLength) printable ASCII characters (optionally as a quoted string)")
        }
        return key
    }

    /// Readiness. Its 503 keeps the original service's health document (not a problem body): probes and
    /// dashboards read `status` as a string, which problem+json would turn into a number.
    private func health(_ store: some CounterStore) -> Response {
        var body = JSONObject(capacity: 96)
        do {
            try store.ping()
            body.add("status", "healthy")
            body.add("redis", "connected")
            body.add("timestamp", clock())
            // Never the primary's address, even with Sentinel: /health is public, and an internal
            // address is no business of the Internet's (the log and counter_redis_primary say it).
            return ok(body)
        } catch {
            body.add("status", "unhealthy")
            body.add("redis", "disconnected")
            body.add("error", "Redis unavailable")
            body.add("timestamp", clock())
            return Response(status: .serviceUnavailable, contentType: .json,
                            headers: [("Retry-After", "1")], body: body.finish())
        }
    }

    func checkBody(_ contentLength: String?) throws(APIError) {
        guard let contentLength, !contentLength.isEmpty else { return }
        // Digits only: Int("+5") and Int("-0") would pass, and nginx never sends those.
        guard contentLength.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else {
            throw .badRequest(detail: "Invalid Content-Length")
        }
        guard let length = Int(contentLength), length <= maxBodyBytes else {
            throw .contentTooLarge(limit: maxBodyBytes)
        }
    }

    func ok(_ body: consuming JSONObject) -> Response {
        Response(status: .ok, contentType: .json, body: body.finish())
    }
}
