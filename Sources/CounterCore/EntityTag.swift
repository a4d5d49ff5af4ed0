/// A strong entity tag for a response body (RFC 9110 §8.8.3), and the `If-None-Match` test that
/// lets a cache revalidate a badge with a 304 instead of fetching it again.
public struct EntityTag: Sendable, Equatable {
    /// The tag as the `ETag` header carries it, quotes included: `"5d2a…"`.
    public let header: String

    /// The tag of `body`: its 64-bit FNV-1a hash in hex. Not a security measure (a tag only has
    /// to change when the bytes do, and a collision costs one stale badge for `max-age`), and
    /// cheap on every badge.
    public init(of body: [UInt8]) {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in body {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        header = "\"" + String(repeating: "0", count: 16 - hex.count) + hex + "\""
    }

    /// Whether `field` (an `If-None-Match` value: `*`, or a comma-separated list of tags, weak
    /// `W/"…"` ones included) names this tag, by the weak comparison RFC 9110 §13.1.2 asks for.
    /// A malformed field matches nothing: the client gets the full response, which is always safe.
    public func matches(ifNoneMatch field: String) -> Bool {
        let trimmed = field.httpTrimmed
        if trimmed == "*" { return true }
        let opaque = header.utf8
        for part in field.utf8.split(separator: UInt8(ascii: ",")) {
            var candidate = Substring(part).httpTrimmed.utf8[...]
            if candidate.starts(with: "W/".utf8) { candidate = candidate.dropFirst(2) }
            if candidate.elementsEqual(opaque) { return true }
        }
        return false
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces and tabs (HTTP's optional whitespace).
    var httpTrimmed: Substring {
        var text = Substring(self)
        while let first = text.first, first == " " || first == "\t" { text = text.dropFirst() }
        while let last = text.last, last == " " || last == "\t" { text = text.dropLast() }
        return text
    }
}
