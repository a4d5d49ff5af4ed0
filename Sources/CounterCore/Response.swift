/// An HTTP status the API can answer with. Only ``APIError`` and ``Router`` pick one.
public struct HTTPStatus: Sendable, Equatable, CustomStringConvertible {
    /// The numeric code, e.g. 503.
    public let code: Int
    /// The reason phrase, also used as the problem `title` (RFC 9457 with `about:blank`).
    public let reason: String

    /// `503 Service Unavailable`.
    public var description: String { "\(code) \(reason)" }

    /// 200.
    public static let ok = HTTPStatus(code: 200, reason: "OK")
    /// 204.
    public static let noContent = HTTPStatus(code: 204, reason: "No Content")
    /// 304: the client's cached copy (named by its `If-None-Match`) is still the current one.
    public static let notModified = HTTPStatus(code: 304, reason: "Not Modified")
    /// 400.
    public static let badRequest = HTTPStatus(code: 400, reason: "Bad Request")
    /// 404.
    public static let notFound = HTTPStatus(code: 404, reason: "Not Found")
    /// 405.
    public static let methodNotAllowed = HTTPStatus(code: 405, reason: "Method Not Allowed")
    /// 409.
    public static let conflict = HTTPStatus(code: 409, reason: "Conflict")
    /// 413.
    public static let contentTooLarge = HTTPStatus(code: 413, reason: "Content Too Large")
    /// 403.
    public static let forbidden = HTTPStatus(code: 403, reason: "Forbidden")
    /// 415.
    public static let unsupportedMediaType = HTTPStatus(code: 415, reason: "Unsupported Media Type")
    /// 422.
    public static let unprocessableContent = HTTPStatus(code: 422, reason: "Unprocessable Content")
    /// 500.
    public static let internalServerError = HTTPStatus(code: 500, reason: "Internal Server Error")
    /// 503.
    public static let serviceUnavailable = HTTPStatus(code: 503, reason: "Service Unavailable")
}

/// A complete response: status, the headers that vary, and the body.
public struct Response: Sendable, Equatable {
    /// The media types the API answers with.
    public enum ContentType: String, Sendable {
        case json = "application/json"
        case problemJSON = "application/problem+json"
        case prometheusText = "text/plain; version=0.0.4; charset=utf-8"
        case svg = "image/svg+xml"
    }

    /// What a response says to caches (`Cache-Control`).
    public enum CacheControl: Sendable, Equatable {
        /// Every response but a badge's: counter values change with every write, so no cache on
        /// the way may keep one.
        case noStore
        /// A keyed badge: the caller's own cache may keep it for ``Router/badgeMaxAge`` seconds.
        case privateBadge
        /// A public counter's badge: any cache may keep it as long.
        case publicBadge

        /// The whole header line, a literal: serialising it costs one copy.
        var line: StaticString {
            switch self {
            case .noStore: "\r\nCache-Control: no-store\r\n"
            case .privateBadge: "\r\nCache-Control: private, max-age=30\r\n"
            case .publicBadge: "\r\nCache-Control: public, max-age=30\r\n"
            }
        }

        /// The header's value.
        public var value: String {
            // By bytes: "\r\n" is one Character in Swift.
            let bytes = UnsafeBufferPointer(start: line.utf8Start, count: line.utf8CodeUnitCount)
            return String(decoding: bytes.dropFirst("\r\nCache-Control: ".utf8.count).dropLast(2), as: UTF8.self)
        }
    }

    /// The response's status.
    public var status: HTTPStatus
    /// The body's media type.
    public var contentType: ContentType
    /// Headers beyond Status, Content-Type, Content-Length and Cache-Control (e.g. `Allow`).
    public var headers: [(name: String, value: String)]
    /// The response body, as sent.
    public var body: [UInt8]
    /// The `Cache-Control` value: ``CacheControl/noStore`` but for badges, which caches may keep a short while.
    public var cacheControl: CacheControl

    /// A response from its parts.
    public init(status: HTTPStatus, contentType: ContentType, headers: [(name: String, value: String)] = [], body: [UInt8],
                cacheControl: CacheControl = .noStore) {
        self.status = status
        self.contentType = contentType
        self.headers = headers
        self.body = body
        self.cacheControl = cacheControl
    }

    /// The value of the first header called `name` (case-insensitive), if any.
    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    /// The body as text (tests and logs).
    public var bodyText: String { String(decoding: body, as: UTF8.self) }

    /// Writes the response in CGI form (what a FastCGI responder sends on stdout) into `buffer`,
    /// which is cleared first but keeps its capacity, so a worker reuses one buffer for every
    /// request. `includeBody` is false for HEAD: the headers still announce the body's length.
    public func serialize(into buffer: inout [UInt8], includeBody: Bool = true) {
        buffer.removeAll(keepingCapacity: true)
        append("Status: ", to: &buffer)
        JSONObject.appendDecimal(Int64(status.code), to: &buffer)
        buffer.append(UInt8(ascii: " "))
        append(status.reason, to: &buffer)
        // A 204 has no content, and so neither a type nor a length (RFC 9110 §8.6); a 304 has
        // none either, and its length would be the cached representation's, not zero.
        if status != .noContent && status != .notModified {
            append("\r\nContent-Type: ", to: &buffer)
            append(contentType.rawValue, to: &buffer)
            append("\r\nContent-Length: ", to: &buffer)
            JSONObject.appendDecimal(Int64(body.count), to: &buffer)
        }
        let line = cacheControl.line
        buffer.append(contentsOf: UnsafeBufferPointer(start: line.utf8Start, count: line.utf8CodeUnitCount))
        for header in headers {
            append(header.name, to: &buffer)
            append(": ", to: &buffer)
            append(header.value, to: &buffer)
            append("\r\n", to: &buffer)
        }
        append("\r\n", to: &buffer)
        if includeBody { buffer.append(contentsOf: body) }
    }

    /// Equal when status, type, body and headers (in order) are.
    public static func == (lhs: Response, rhs: Response) -> Bool {
        lhs.status == rhs.status && lhs.contentType == rhs.contentType && lhs.body == rhs.body && lhs.cacheControl == rhs.cacheControl
            && lhs.headers.map { "\($0.name): \($0.value)" } == rhs.headers.map { "\($0.name): \($0.value)" }
    }
}

/// Appends the text's bytes in one copy: appending `text.utf8` would go byte by byte, on every
/// response (docs/performance.md has the cost).
private func append(_ text: String, to buffer: inout [UInt8]) {
    var text = text
    text.withUTF8 { buffer.append(contentsOf: $0) }
}
