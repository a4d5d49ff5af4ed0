/// One request that nginx answered itself, as reported on the edge log socket.
///
/// Requests nginx refuses (401, 403, 404, 405, 429 from the rate limits, 444 for unknown hosts,
/// 400/413/414/431 for malformed ones) or fails to pass on (502, 504) never reach counter-fcgi,
/// so its request metrics cannot see them. nginx reports each of them as one syslog datagram
/// (`access_log syslog:... counter_edge if=$edge_answered` in nginx/counter-api.conf):
///
///     <190>Nov 29 16:00:54 counter_edge: route=/read status=429
///
/// Only the message after the header is read; its format is ours (`log_format counter_edge`).
public struct EdgeLogLine: Equatable, Sendable {
    /// The label for paths that are not routes: bounded cardinality, whatever clients send.
    public static let otherRoute = "other"

    /// A route's path (`/read`), a named-counter route's template (`/v1/counters/{name}`), or ``otherRoute``.
    public let route: String
    /// The HTTP status nginx answered with (100 to 599).
    public let status: Int

    /// A line for `route` (a route's path or `other`) and `status`.
    public init(route: String, status: Int) {
        self.route = route
        self.status = status
    }

    /// Parses one datagram; nil when it is not a well-formed edge line (counted, never trusted).
    public init?(datagram: some Collection<UInt8>) {
        let bytes = Array(datagram.prefix(EdgeLogLine.maxDatagramBytes + 1))
        guard bytes.count <= EdgeLogLine.maxDatagramBytes,
              let start = EdgeLogLine.find(EdgeLogLine.routeMarker, in: bytes) else { return nil }
        var message = bytes[(start + EdgeLogLine.routeMarker.count)...]
        while let last = message.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: " ") {
            message = message.dropLast()
        }
        // `<route> status=<3 digits>`, nothing else.
        guard let space = message.firstIndex(of: UInt8(ascii: " ")) else { return nil }
        let routeBytes = message[..<space]
        let rest = message[(space + 1)...]
        guard rest.starts(with: EdgeLogLine.statusMarker), rest.count == EdgeLogLine.statusMarker.count + 3 else { return nil }
        var status = 0
        for byte in rest.dropFirst(EdgeLogLine.statusMarker.count) {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
            status = status * 10 + Int(byte - UInt8(ascii: "0"))
        }
        guard (100...599).contains(status) else { return nil }
        let text = String(decoding: routeBytes, as: UTF8.self)
        guard text == EdgeLogLine.otherRoute || Route(rawValue: text) != nil || CounterRoute(rawValue: text) != nil else { return nil }
        self.init(route: text, status: status)
    }

    /// nginx's lines are about 60 bytes; anything much longer is not one of them.
    public static let maxDatagramBytes = 512

    private static let routeMarker = Array("route=".utf8)
    private static let statusMarker = Array("status=".utf8)

    /// The first index of `needle` in `haystack` that starts a field (at the start or after a space).
    private static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for start in 0...(haystack.count - needle.count)
        where (start == 0 || haystack[start - 1] == UInt8(ascii: " ")) && haystack[start..<(start + needle.count)].elementsEqual(needle) {
            return start
        }
        return nil
    }
}
