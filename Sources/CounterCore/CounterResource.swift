/// What a path under `/v1/counters` addresses. Parsed from nginx's normalised path (`$uri`:
/// decoded, dot segments resolved), so `/v1/counters/a/../b` has become `/v1/counters/b` before it
/// gets here.
public enum CounterResource: Sendable, Equatable {
    /// `/v1/counters`: the listing.
    case collection
    /// `/v1/counters/{name}`: read, set (PUT), delete.
    case counter(CounterName)
    /// `/v1/counters/{name}/increment` and `/decrement`.
    case step(CounterName, CounterStep)
    /// `/v1/counters/{name}/badge.svg`: the value as an SVG badge.
    case badge(CounterName)

    /// The common root of the named-counter routes.
    public static let root = "/v1/counters"

    /// The resource `path` addresses: nil when `path` is not under ``root`` at all (another route
    /// or an unknown path); throws a 404 for an unknown sub-resource and a 400 for a name that
    /// breaks the grammar.
    public static func parse(_ path: String) throws(APIError) -> CounterResource? {
        guard path.hasPrefix(root) else { return nil }
        let rest = path.utf8.dropFirst(root.utf8.count)
        if rest.isEmpty { return .collection }
        guard rest.first == UInt8(ascii: "/") else { return nil }  // /v1/countersX is another path
        // The name, then at most one more segment; scanned in place (this runs on every request).
        let afterSlash = rest.dropFirst()
        let slash = afterSlash.firstIndex(of: UInt8(ascii: "/"))
        let first = afterSlash[..<(slash ?? afterSlash.endIndex)]
        let second = slash.map { afterSlash[afterSlash.index(after: $0)...] }
        if let second, second.contains(UInt8(ascii: "/")) { throw .notFound }
        guard let name = CounterName(Substring(first)) else {
            throw .badRequest(detail: "Invalid counter name: a name is \(CounterName.rule)")
        }
        guard let second else { return .counter(name) }
        if second.elementsEqual("increment".utf8) { return .step(name, .increment) }
        if second.elementsEqual("decrement".utf8) { return .step(name, .decrement) }
        if second.elementsEqual("badge.svg".utf8) { return .badge(name) }
        throw .notFound
    }

    /// The methods this resource answers, in the order the `Allow` header lists them.
    public var methods: [String] {
        switch self {
        case .collection: CounterResource.readMethods
        case .counter: CounterResource.counterMethods
        case .step: CounterResource.stepMethods
        case .badge: CounterResource.readMethods
        }
    }

    private static let readMethods = ["GET", "HEAD"]
    private static let counterMethods = ["GET", "HEAD", "PUT", "DELETE"]
    private static let stepMethods = ["POST"]
}

/// The two relative writes, by their path segment.
public enum CounterStep: String, Sendable, Equatable {
    case increment
    case decrement
}
