// libFuzzer harness for counter-fcgi's request handling (scripts/fuzz.sh builds and runs it).
// Compiled together with CounterCore's routing sources in one module, without FastCGI or Redis.
//
// Input: fields separated by NUL bytes: method, path, Content-Length, Idempotency-Key, client,
// stored counter value, failure selector. For the named-counter routes (/v1/counters) the client
// field is also the query string (and a badge's If-None-Match), the stored value also the body,
// and the failure selector also the namespace and the operator's public and hit-counter prefixes.
// Each run checks the invariants every response must keep.
import Foundation

private let router = Router(maxBodyBytes: 1024, clock: { Timestamp(seconds: 1_764_417_600, microseconds: 1) })
private let allowed: Set<Int> = [200, 204, 304, 400, 403, 404, 405, 409, 413, 415, 422, 500, 503]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let fields = bytes.split(separator: 0, maxSplits: 6, omittingEmptySubsequences: false)
        .map { String(decoding: $0, as: UTF8.self) }
    func field(_ index: Int) -> String? { index < fields.count ? fields[index] : nil }

    let store = MemoryCounterStore(stored: field(5).flatMap { $0.isEmpty ? nil : $0 })
    if let stored = field(5), let name = CounterName("fuzz") { store.named[name] = stored }
    switch field(6)?.utf8.first.map({ $0 % 8 }) {
    case 1: store.failure = .unavailable(reason: "fuzz")
    case 2: store.failure = .unexpected(message: "fuzz")
    default: break
    }
    let prefix = field(6).flatMap { CounterPrefix($0) }
    let named = NamedParts(query: field(4) ?? "", contentType: field(6).map { _ in "application/json" },
                           body: Array((field(5) ?? "").utf8.prefix(1024)), namespace: prefix ?? .none,
                           publicPrefix: prefix, hitPrefix: prefix, ifNoneMatch: field(4))
    let head = RequestHead(method: field(0) ?? "", path: field(1) ?? "", contentLength: field(2),
                           idempotencyKey: field(3), client: field(4) ?? "-", named: named)
    let response = router.respond(to: head, store: store)

    precondition(allowed.contains(response.status.code), "unexpected status \(response.status)")
    if response.status.code == 204 {
        precondition(response.body.isEmpty && head.method == "DELETE", "204 only for a DELETE, with no body")
        return 0
    }
    if response.contentType == .svg {
        // A badge: only a read (or a hit counter's count), an SVG document whose every `<` opens
        // one of the elements we write, and a 304 only without a body.
        precondition(head.path.hasSuffix("/badge.svg") && ["GET", "HEAD"].contains(head.method), "SVG only from a badge")
        precondition(store.writes == 0 || (response.cacheControl == .noStore && response.header("ETag") == nil), "a counting badge is not cached")
        if response.status.code == 304 {
            precondition(response.body.isEmpty && response.header("ETag") != nil, "a 304 has a tag and no body")
            return 0
        }
        let svg = response.bodyText
        precondition(svg.hasPrefix("<svg xmlns=\"http://www.w3.org/2000/svg\"") && svg.hasSuffix("</svg>"), "an SVG document")
        let elements = ["svg", "/svg", "title", "/title", "linearGradient", "/linearGradient", "stop", "clipPath", "/clipPath", "rect",
                        "g", "/g", "text", "/text"]
        // Over Unicode scalars, not Characters: a label may start with a combining mark, which
        // Swift joins with the `>` before it into one Character (XML reads code points).
        for part in svg.unicodeScalars.split(separator: "<").dropFirst() {
            let tag = part.prefix { $0 != " " && $0 != ">" && $0 != "/" || $0 == "/" && part.first == "/" }
            precondition(elements.contains(String(String.UnicodeScalarView(tag))), "only our elements: <\(String(String.UnicodeScalarView(tag)))")
        }
        return 0
    }
    let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
    precondition(object != nil, "body is not a JSON object: \(response.bodyText)")
    if response.contentType == .problemJSON {
        precondition(object?["status"] as? Int == response.status.code, "problem status differs")
        precondition(object?["error"] as? String == object?["detail"] as? String, "error != detail")
    }
    if !["POST", "PUT", "DELETE"].contains(head.method) {
        precondition(store.writes == 0 || head.path.hasSuffix("/badge.svg"), "only POST, PUT and DELETE may write (and a hit counter's badge)")
    }
    if response.status.code != 200 {
        precondition(store.writes == 0 || head.method == "DELETE", "a refused write changes nothing")
    }
    var wire: [UInt8] = []
    response.serialize(into: &wire)
    precondition(!wire.isEmpty && !String(decoding: wire, as: UTF8.self).contains("\r\n\r\n\r\n"), "bad CGI framing")

    // The small parsers on their own.
    let text = field(0) ?? ""
    if let value = CounterValue.parse(Array(text.utf8)) {
        precondition(String(value) == text, "CounterValue.parse accepted a non-canonical \(text)")
    }
    // Idempotency-Key: taken as sent when it is 1 to 255 printable ASCII characters, unquoted
    // when it is a valid quoted string, refused otherwise.
    let printable = text.utf8.allSatisfy { (0x20...0x7E).contains($0) }
    if let key = IdempotencyKey(header: text, client: "c") {
        precondition(printable, "a key with a byte outside printable ASCII was accepted")
        precondition(!key.value.isEmpty && key.value.utf8.count <= IdempotencyKey.maxLength)
        precondition(key.value.utf8.allSatisfy { (0x20...0x7E).contains($0) })
        if key.value != text {
            precondition(text.hasPrefix("\"") && text.hasSuffix("\""), "only a quoted key is changed")
            let requoted = "\"" + key.value.replacingOccurrences(of: "\\", with: "\\\\")
                .replacingOccurrences(of: "\"", with: "\\\"") + "\""
            precondition(requoted == text, "unquoting is exact")
        }
    } else if printable, let first = text.utf8.first, first != UInt8(ascii: "\""), text.utf8.count <= IdempotencyKey.maxLength {
        preconditionFailure("a bare printable key was refused: \(text)")
    }
    // Named counters' parsers: a name is exactly its grammar; queries and cursors never crash and
    // what they accept reads back.
    if let name = CounterName(text) {
        precondition(name.text == text && (1...CounterName.maxLength).contains(text.utf8.count), "names are taken as sent")
        precondition(text.utf8.allSatisfy(CounterName.allows) && text != "." && text != "..", "the name alphabet")
        precondition(CounterName(storageKey: name.storageKey) == name, "a value key names its counter")
    }
    if let query = try? QueryString(text), let by = try? query.integer("by", in: 1...Int64.max, default: 1) {
        precondition(by >= 1, "by is positive")
    }
    if let query = try? QueryString(text), let name = CounterName("fuzz"), let options = try? BadgeOptions(query, name: name) {
        precondition(options.label.count <= BadgeOptions.maxLabelLength && options.color.hex.utf8.count == 7, "badge options in range")
    }
    if let value = CounterValue.parse(Array(text.utf8)) {
        let short = AbbreviatedNumber.text(value)
        precondition(short.utf8.count <= 6 && (value < 0) == short.hasPrefix("-"), "an abbreviation is short and keeps the sign")
    }
    if let color = BadgeColor(text) {
        precondition(color.hex.hasPrefix("#") && color.hex.dropFirst().allSatisfy(\.isHexDigit), "colours are #rrggbb")
    }
    _ = EntityTag(of: bytes).matches(ifNoneMatch: text)
    if let cursor = ListCursor(text) {
        precondition(ListCursor(cursor.text) == cursor, "a cursor reads back")
    }
    if let (write, outcome) = NamedRecord.parse(text) {
        precondition(text == "\(write.fingerprint):\(outcome.value):\(outcome.timestamp.text)", "named records are parsed exactly")
    }
    if let stamp = Timestamp(text: text) {
        precondition(stamp.text == text, "Timestamp round trip")
    }
    if let (operation, outcome) = IdempotencyRecord.parse(text) {
        // Exact: nothing but the three fields, each in its one spelling, makes a record.
        precondition(text == "\(operation.rawValue):\(outcome.value):\(outcome.timestamp.text)", "records are parsed exactly")
    }
    // Any datagram on the edge log port: only known labels ever come out.
    if let line = EdgeLogLine(datagram: bytes) {
        precondition(line.route == EdgeLogLine.otherRoute || Route(rawValue: line.route) != nil
                     || CounterRoute(rawValue: line.route) != nil, "edge route label")
        precondition((100...599).contains(line.status), "edge status label")
    }
    return 0
}
