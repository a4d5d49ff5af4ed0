/// The named-counter routes as the metrics label them: by template, never by a counter's name
/// (names are unbounded; labels must not be).
public enum CounterRoute: String, CaseIterable, Sendable {
    case collection = "/v1/counters"
    case counter = "/v1/counters/{name}"
    case increment = "/v1/counters/{name}/increment"
    case decrement = "/v1/counters/{name}/decrement"
    case badge = "/v1/counters/{name}/badge.svg"
}

extension CounterResource {
    /// The route template of this resource.
    var route: CounterRoute {
        switch self {
        case .collection: .collection
        case .counter: .counter
        case .step(_, .increment): .increment
        case .step(_, .decrement): .decrement
        case .badge: .badge
        }
    }
}

extension Router {
    /// The largest page a listing returns, and the page size when `limit` is not given.
    public static let maxListLimit: Int64 = 1000
    /// The page size of a listing without `limit`.
    public static let defaultListLimit: Int64 = 100

    /// The answer to a request under `/v1/counters`; nil when the path is not one of them (then
    /// it is routed as any other path).
    func routeCounters(_ request: RequestHead, store: some CounterStore) -> Routed? {
        let resource: CounterResource
        do {
            guard let parsed = try CounterResource.parse(request.path) else { return nil }
            resource = parsed
        } catch {
            return Routed(response: error.response, endpoint: .counters(.counter), replayed: false)
        }
        do {
            let (response, replayed) = try dispatch(request, resource, store: store)
            return Routed(response: response, endpoint: .counters(resource.route), replayed: replayed)
        } catch {
            return Routed(response: error.response, endpoint: .counters(resource.route), replayed: false)
        }
    }

    private func dispatch(_ request: RequestHead, _ resource: CounterResource, store: some CounterStore) throws(APIError) -> (Response, Bool) {
        guard resource.methods.contains(request.method) else {
            throw .methodNotAllowed(path: request.path, allowed: resource.methods)
        }
        try checkBody(request.contentLength)
        do {
            switch resource {
            case .collection:
                return (try list(request, store: store), false)
            case .counter(let name):
                try admit(name, request)
                switch request.method {
                case "PUT":
                    let value = try SetBody.parse(request.body, contentType: request.contentType)
                    let outcome = try store.apply(.set(value), to: name, idempotency: try idempotency(request), now: clock())
                    return (written(name, .set(value), outcome), outcome.replayed)
                case "DELETE":
                    let outcome = try store.apply(.delete, to: name, idempotency: try idempotency(request), now: clock())
                    guard outcome.value == 1 else { throw APIError.counterNotFound(name) }
                    var response = Response(status: .noContent, contentType: .json, body: [])
                    if outcome.replayed { response.headers.append(("Idempotent-Replayed", "true")) }
                    return (response, outcome.replayed)
                default:
                    guard let value = try store.value(of: name) else { throw APIError.counterNotFound(name) }
                    var body = JSONObject(capacity: 96)
                    body.add("name", name)
                    body.add("value", value)
                    body.add("timestamp", clock())
                    return (ok(body), false)
                }
            case .step(let name, let step):
                try admit(name, request)
                let by = try QueryString(request.query).integer("by", in: 1...Int64.max, default: 1)
                let write: NamedWrite = step == .increment ? .increment(by: by) : .decrement(by: by)
                let outcome = try store.apply(write, to: name, idempotency: try idempotency(request), now: clock())
                return (written(name, write, outcome), outcome.replayed)
            case .badge(let name):
                try admit(name, request)
                return (try badge(name, request, store: store), false)
            }
        } catch let error as CounterError {
            switch error {
            case .overflow: throw .counterOutOfRange
            case .idempotencyKeyReusedForWrite(let first): throw .idempotencyKeyReusedForWrite(first)
            case .invalidCursor: throw .badRequest(detail: "Invalid cursor: pass the next value of an earlier page, unchanged")
            default: throw .counter(error)
            }
        } catch let error as APIError {
            throw error
        } catch {
            throw .counter(.unexpected(message: "\(error)"))
        }
    }

    /// A name outside the caller's namespace is refused before anything is read or written.
    private func admit(_ name: CounterName, _ request: RequestHead) throws(APIError) {
        guard name.hasPrefix(request.namespace) else { throw .outsideNamespace(request.namespace) }
    }

    private func list(_ request: RequestHead, store: some CounterStore) throws -> Response {
        let query = try QueryString(request.query)
        var prefix = request.namespace
        if let text = query["prefix"] {
            guard let asked = CounterPrefix(text) else {
                throw APIError.badRequest(detail: "Invalid prefix: a prefix is up to \(CounterName.maxLength) characters from A-Z a-z 0-9 . _ - :")
            }
            guard request.namespace.contains(asked) else { throw APIError.outsideNamespace(request.namespace) }
            prefix = asked
        }
        let limit = try query.integer("limit", in: 1...Router.maxListLimit, default: Router.defaultListLimit)
        let page = try store.list(prefix: prefix, limit: Int(limit), cursor: query["cursor"] ?? "")
        var body = JSONObject(capacity: 64 + page.counters.count * 48)
        body.add("counters", objects: page.counters.map { counter in
            var item = JSONObject(capacity: 48)
            item.add("name", counter.name)
            item.add("value", counter.value)
            return item.finish()
        })
        if let next = page.next { body.add("next", next) } else { body.addNull("next") }
        body.add("timestamp", clock())
        return ok(body)
    }

    /// The body of a named write, the same for a first response and its replays.
    private func written(_ name: CounterName, _ write: NamedWrite, _ outcome: WriteOutcome) -> Response {
        var body = JSONObject(capacity: 112)
        body.add("name", name)
        body.add("value", outcome.value)
        body.add("operation", literal: write.operationLiteral)
        body.add("timestamp", outcome.timestamp)
        var response = ok(body)
        if outcome.replayed { response.headers.append(("Idempotent-Replayed", "true")) }
        return response
    }
}

/// The body `PUT /v1/counters/{name}` takes: exactly `{"value": N}` (whitespace allowed), N a
/// 64-bit integer, as `application/json`. Strict on purpose: a typo in the member name must not
/// set a counter to a default. N is any JSON number whose value is an integer in range (`5`,
/// `5.0`, `5e0`, `-45e14`), as JSON Schema's `integer` reads it: generators and encoders that
/// write integral floats are not refused, and `5.5` or `1e19` are.
enum SetBody {
    static func parse(_ body: [UInt8], contentType: String?) throws(APIError) -> Int64 {
        let mediaType = contentType?.split(separator: ";", maxSplits: 1).first?.httpTrimmed.lowercased()
        guard mediaType == "application/json" else { throw .unsupportedMediaType }
        var reader = Reader(bytes: body)
        guard reader.take("{"), reader.take("\"value\""), reader.take(":"), let value = reader.integer(), reader.take("}"), reader.atEnd else {
            throw .badRequest(detail: "The body must be the JSON object {\"value\": N}, N an integer from \(Int64.min) to \(Int64.max)")
        }
        return value
    }

    private struct Reader {
        let bytes: [UInt8]
        var index = 0

        mutating func skipSpace() {
            while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
        }

        mutating func take(_ token: StaticString) -> Bool {
            skipSpace()
            let expected = token.withUTF8Buffer { Array($0) }
            guard bytes.count - index >= expected.count, Array(bytes[index..<index + expected.count]) == expected else { return false }
            index += expected.count
            return true
        }

        /// A JSON number (RFC 8259 §6) whose value is an integer of 64 bits, exactly.
        mutating func integer() -> Int64? {
            skipSpace()
            let negative = index < bytes.count && bytes[index] == UInt8(ascii: "-")
            if negative { index += 1 }
            let integral = digits()
            // No leading zeros (JSON), at least one digit.
            guard !integral.isEmpty, integral == [UInt8(ascii: "0")] || integral.first != UInt8(ascii: "0") else { return nil }
            var fraction: [UInt8] = []
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                fraction = digits()
                guard !fraction.isEmpty else { return nil }
            }
            var exponent = 0
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                index += 1
                var sign = 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                    sign = bytes[index] == UInt8(ascii: "-") ? -1 : 1
                    index += 1
                }
                let power = digits()
                guard !power.isEmpty, power.count <= 4, let value = Int(String(decoding: power, as: UTF8.self)) else { return nil }
                exponent = sign * value
            }
            // The value is mantissa x 10^scale; integral only when the dropped digits are zeros.
            var mantissa = integral + fraction
            let scale = exponent - fraction.count
            if scale < 0 {
                let dropped = min(-scale, mantissa.count)
                guard mantissa.suffix(dropped).allSatisfy({ $0 == UInt8(ascii: "0") }), -scale <= mantissa.count else {
                    return mantissa.allSatisfy({ $0 == UInt8(ascii: "0") }) ? 0 : nil
                }
                mantissa.removeLast(dropped)
            } else if scale > 0 {
                guard mantissa.contains(where: { $0 != UInt8(ascii: "0") }) else { return 0 }
                guard scale <= 19 else { return nil }
                mantissa += Array(repeating: UInt8(ascii: "0"), count: scale)
            }
            while mantissa.count > 1, mantissa.first == UInt8(ascii: "0") { mantissa.removeFirst() }
            if mantissa.isEmpty || mantissa == [UInt8(ascii: "0")] { return 0 }
            return CounterValue.parse((negative ? [UInt8(ascii: "-")] : []) + mantissa)
        }

        private mutating func digits() -> [UInt8] {
            let start = index
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
            return Array(bytes[start..<index])
        }

        var atEnd: Bool {
            mutating get {
                skipSpace()
                return index == bytes.count
            }
        }
    }
}
