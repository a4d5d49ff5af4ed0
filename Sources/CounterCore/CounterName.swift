#if canImport(Glibc)
import Glibc
#endif

/// The name of a named counter (`/v1/counters/{name}`), checked against the one grammar the API
/// documents: 1 to ``maxLength`` characters from `A-Z a-z 0-9 . _ - :`, case-sensitive, and not
/// `.` or `..` (which a URL path resolves away before any server sees them).
///
/// The alphabet needs no escaping anywhere a name travels: in a URL path segment, in a query
/// string, in JSON, in a log line, and in a Redis key (no `{`, `}` or `*`, so a name can neither
/// change its key's hash tag nor act as a pattern in SCAN's MATCH). `:` lets clients build their own
/// hierarchies (`billing:acme:api-calls`), which key prefixes (`ns=billing:`) then scope.
public struct CounterName: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The longest name accepted, in characters (all ASCII, so also in bytes).
    public static let maxLength = 128

    /// The grammar, as problem details and the docs state it.
    public static let rule = "1 to \(maxLength) characters from A-Z a-z 0-9 . _ - : (case-sensitive), other than . and .."

    /// The name as the client sent it (it is valid).
    public let text: String

    /// The name in `text`, or nil when `text` breaks the grammar.
    public init?(_ text: some StringProtocol) {
        let bytes = text.utf8
        guard !bytes.isEmpty, bytes.count <= CounterName.maxLength, bytes.allSatisfy(CounterName.allows),
              text != ".", text != ".." else { return nil }
        self.text = String(text)
    }

    /// The name in `bytes`, or nil when they break the grammar: the path parser's way in, with
    /// no generic string code between the request's bytes and the name.
    init?(bytes: UnsafeBufferPointer<UInt8>) {
        guard !bytes.isEmpty, bytes.count <= CounterName.maxLength, bytes.allSatisfy(CounterName.allows) else { return nil }
        if bytes[0] == UInt8(ascii: "."), bytes.count <= 2, bytes.allSatisfy({ $0 == UInt8(ascii: ".") }) { return nil }
        text = String(decoding: bytes, as: UTF8.self)
    }

    /// Whether `byte` may appear in a name (and in a name prefix).
    public static func allows(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: ":"):
            true
        default:
            false
        }
    }

    /// The Redis key of the counter's value: the name inside a `{c:...}` hash tag, so the value
    /// and its idempotency records (``idempotencyKey(for:)``) share one Redis Cluster slot and one
    /// script can touch them all.
    public var storageKey: String { "{c:\(text)}" }

    /// The Redis key holding the first outcome of a write made with `key` on this counter.
    public func idempotencyKey(for key: IdempotencyKey) -> String {
        "{c:\(text)}:idempotency:\(key.client):\(key.value)"
    }

    /// The name a value key (``storageKey``) belongs to; nil for any other key (idempotency
    /// records, the default counter's keys).
    public init?(storageKey key: some StringProtocol) {
        guard key.hasPrefix("{c:"), key.hasSuffix("}") else { return nil }
        self.init(key.dropFirst(3).dropLast())
    }

    /// True when the name starts with `prefix` (the empty prefix admits every name).
    public func hasPrefix(_ prefix: CounterPrefix) -> Bool {
        // Checked on every named request, nearly always against the empty prefix: no generic code.
        if prefix.text.isEmpty { return true }
        var text = text, prefixText = prefix.text
        return text.withUTF8 { name in
            prefixText.withUTF8 { start in
                name.count >= start.count && memcmp(name.baseAddress!, start.baseAddress!, start.count) == 0
            }
        }
    }

    public var description: String { text }

    public static func < (lhs: CounterName, rhs: CounterName) -> Bool { lhs.text.utf8.lexicographicallyPrecedes(rhs.text.utf8) }
}

/// A name prefix: a key's namespace (`ns=billing:` in the keys file) or a listing's `prefix=`
/// filter. Empty, or up to ``CounterName/maxLength`` characters of the name alphabet.
public struct CounterPrefix: Sendable, Hashable {
    /// The prefix every name starts with.
    public static let none = CounterPrefix(checked: "")
    /// A namespace no name is in (its text, a space, is no name's first character): what a key
    /// whose prefix cannot be read is given, so a mistake refuses rather than admits.
    public static let unusable = CounterPrefix(checked: " ")

    /// The prefix as given (valid).
    public let text: String

    /// The prefix in `text`, or nil when it has a character no name may have, or is too long.
    public init?(_ text: some StringProtocol) {
        guard text.utf8.count <= CounterName.maxLength, text.utf8.allSatisfy(CounterName.allows) else { return nil }
        self.text = String(text)
    }

    private init(checked text: String) {
        self.text = text
    }

    /// True when every name under `other` is also under this prefix (so a listing filtered by
    /// `other` stays inside this namespace).
    public func contains(_ other: CounterPrefix) -> Bool { other.text.utf8.starts(with: text.utf8) }

    /// The SCAN pattern of the value keys of the names under this prefix. The name alphabet has
    /// none of the pattern's special characters (`* ? [ ] \`), so the prefix needs no escaping.
    public var scanPattern: String { "{c:\(text)*}" }
}
