/// A request's query string (`prefix=billing%3A&limit=50`), split and percent-decoded once, with
/// typed, range-checked reads that fail as the API's 400s.
///
/// Strict where leniency would hide mistakes: a malformed escape or a parameter given twice is a
/// 400, not a guess. Parameters the route does not read are ignored (caches and trackers add their
/// own, such as `utm_source` on a badge URL).
public struct QueryString: Sendable, Equatable {
    /// The longest query string read; nginx's header buffers bound it already, this bounds the work.
    public static let maxLength = 2048

    private var pairs: [(name: String, value: String)]

    /// The parameters of `query` (without the `?`); throws a 400 for a malformed one.
    public init(_ query: String) throws(APIError) {
        guard query.utf8.count <= QueryString.maxLength else {
            throw .badRequest(detail: "The query string is longer than \(QueryString.maxLength) bytes")
        }
        pairs = []
        for part in query.utf8.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let equals = part.firstIndex(of: UInt8(ascii: "="))
            let rawName = part[..<(equals ?? part.endIndex)]
            let rawValue = equals.map { part[part.index(after: $0)...] } ?? part[part.endIndex...]
            guard let name = QueryString.decode(rawName), let value = QueryString.decode(rawValue), !name.isEmpty else {
                throw .badRequest(detail: "Malformed query string: each parameter is name=value, with %XX escapes only")
            }
            guard !pairs.contains(where: { $0.name == name }) else {
                throw .badRequest(detail: "The query parameter \(name) is given more than once")
            }
            pairs.append((name, value))
        }
    }

    /// The decoded value of `name`, or nil when absent.
    public subscript(name: String) -> String? {
        pairs.first(where: { $0.name == name })?.value
    }

    /// The integer `name` holds, within `range`; `fallback` when absent. Digits only (an optional
    /// leading `-` where the range allows negatives), no `+`, spaces or leading zeros.
    public func integer(_ name: String, in range: ClosedRange<Int64>, default fallback: Int64) throws(APIError) -> Int64 {
        guard let text = self[name] else { return fallback }
        guard let value = CounterValue.parse(Array(text.utf8)), range.contains(value) else {
            throw .badRequest(detail: "\(name) must be an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    public static func == (lhs: QueryString, rhs: QueryString) -> Bool {
        lhs.pairs.elementsEqual(rhs.pairs) { $0.name == $1.name && $0.value == $1.value }
    }

    /// Percent-decodes `bytes` (`+` is a space, as forms send it); nil for a bad escape, a control
    /// character or bytes that are not UTF-8.
    static func decode(_ bytes: Substring.UTF8View) -> String? {
        // Most parameters need no decoding: then the text is taken as it is, with no copy on the way.
        if !bytes.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") || $0 < 0x20 || $0 == 0x7F }) {
            return String(Substring(bytes))
        }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index != bytes.endIndex {
            var byte = bytes[index]
            if byte == UInt8(ascii: "%") {
                let high = bytes.index(after: index)
                guard high != bytes.endIndex, bytes.index(after: high) != bytes.endIndex,
                      let h = hexValue(bytes[high]), let l = hexValue(bytes[bytes.index(after: high)]) else { return nil }
                byte = h << 4 | l
                index = bytes.index(after: high)
            } else if byte == UInt8(ascii: "+") {
                byte = UInt8(ascii: " ")
            }
            guard byte >= 0x20, byte != 0x7F else { return nil }
            out.append(byte)
            index = bytes.index(after: index)
        }
        return String(validating: out, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

extension QueryString {
    /// The yes/no parameter `name` (`1`, `true`, `0`, `false`); `fallback` when absent.
    public func flag(_ name: String, default fallback: Bool) throws(APIError) -> Bool {
        switch self[name] {
        case nil: fallback
        case "1", "true": true
        case "0", "false": false
        default: throw .badRequest(detail: "\(name) must be 1, true, 0 or false")
        }
    }
}
