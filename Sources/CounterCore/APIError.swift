/// Every way a request can fail, and the one place that turns a failure into HTTP.
///
/// No other code picks an error status: the router throws or returns one of these, and
/// ``response`` maps it to a status and an RFC 9457 problem body that keeps the `error` member
/// of the original Flask service. Messages never contain Redis's own text or anything secret.
public enum APIError: Error, Equatable, Sendable {
    /// No route has this path.
    case notFound
    /// The path exists but takes another method; `allowed` goes into the `Allow` header.
    case methodNotAllowed(path: String, allowed: [String])
    /// The request is malformed; `detail` says how.
    case badRequest(detail: String)
    /// The request carries a body larger than the API accepts.
    case contentTooLarge(limit: Int)
    /// A counter operation failed.
    case counter(CounterError)
    /// The named counter does not exist.
    case counterNotFound(CounterName)
    /// A named counter's write would pass the 64-bit range; nothing changed.
    case counterOutOfRange
    /// The idempotency key was first used on this counter for another write; nothing was done.
    case idempotencyKeyReusedForWrite(NamedWrite)
    /// The name (or listing prefix) lies outside the names the caller's key may use.
    case outsideNamespace(CounterPrefix)
    /// A body that is not `application/json` where JSON is taken.
    case unsupportedMediaType
    /// `count=1` on a badge whose counter is not under a hit-counter prefix.
    case hitsNotEnabled

    /// The status and problem+json body for this error.
    public var response: Response {
        let (status, detail, headers) = mapping
        var body = JSONObject()
        body.add("type", "about:blank")
        body.add("title", status.reason)
        body.add("status", status.code)
        body.add("detail", detail)
        body.add("error", detail)
        return Response(status: status, contentType: .problemJSON, headers: headers, body: body.finish())
    }

    /// The 404 detail, listing the routes. nginx answers most 404s itself with the same text
    /// (nginx/counter-api.conf); a unit test keeps the two and the route table in step.
    public static let unknownPathDetail: String = {
        let paths = Route.allCases.map(\.rawValue) + [CounterResource.root]
        return "Unknown path; the endpoints are \(paths.dropLast().joined(separator: ", ")) and \(paths[paths.count - 1])"
    }()

    private var mapping: (HTTPStatus, String, [(name: String, value: String)]) {
        switch self {
        case .notFound:
            return (.notFound, APIError.unknownPathDetail, [])
        case .methodNotAllowed(let path, let allowed):
            let list = allowed.joined(separator: ", ")
            return (.methodNotAllowed, "Use \(allowed[0]) for \(path)", [("Allow", list)])
        case .badRequest(let detail):
            return (.badRequest, detail, [])
        case .contentTooLarge(let limit):
            return (.contentTooLarge, "The request body is larger than the API takes (at most \(limit) bytes)", [])
        case .counter(.unavailable):
            // Workers reconnect within a second (capped backoff), so one second is an honest hint.
            return (.serviceUnavailable, "Redis unavailable", [("Retry-After", "1")])
        case .counter(.misconfigured):
            // Not 503: a retry cannot succeed until an operator fixes the settings, so no
            // Retry-After invites one. The log line says what Redis refused.
            return (.internalServerError, "The service cannot use its Redis: a configuration error (see the service's log)", [])
        case .counter(.corruptValue):
            return (.internalServerError, "The counter value in Redis is not a 64-bit integer; it was left unchanged", [])
        case .counter(.overflow):
            return (.conflict, "The counter is at its maximum (\(Int64.max)) and cannot be incremented; reset it", [])
        case .counter(.unexpected):
            return (.internalServerError, "Unexpected reply from Redis", [])
        case .counterNotFound(let name):
            return (.notFound, "No counter is named \(name.text)", [])
        case .counterOutOfRange:
            return (.conflict, "The write would take the counter past the 64-bit range (\(Int64.min) to \(Int64.max)); nothing changed", [])
        case .idempotencyKeyReusedForWrite(let first):
            return (.unprocessableContent, "This Idempotency-Key was first used on this counter for \(first.operation) \(first.argument); use a new key for another write", [])
        case .outsideNamespace(let prefix):
            return (.forbidden, "This API key may use only counters whose names start with \"\(prefix.text)\"", [])
        case .unsupportedMediaType:
            return (.unsupportedMediaType, "The body must be application/json", [])
        case .hitsNotEnabled:
            return (.forbidden, "This counter's badge does not count views: count=1 works only for names under the operator's PUBLIC_HIT_COUNTERS prefixes", [])
        case .counter(.idempotencyKeyReusedForWrite), .counter(.invalidCursor):
            // The router maps both to their own errors before they get here.
            return (.internalServerError, "Unexpected reply from Redis", [])
        case .counter(.idempotencyKeyReused(let first)):
            let path = first == .increment ? "/write" : "/reset"
            return (.unprocessableContent, "This Idempotency-Key was first used for \(path); use a new key for another operation", [])
        }
    }
}
