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
        let segments = rest.dropFirst().split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        guard let first = segments.first, segments.count <= 2 else { throw .notFound }
        guard let name = CounterName(String(decoding: first, as: UTF8.self)) else {
            throw .badRequest(detail: "Invalid counter name: a name is \(CounterName.rule)")
        }
        guard segments.count == 2 else { return .counter(name) }
        guard let step = CounterStep(rawValue: String(decoding: segments[1], as: UTF8.self)) else { throw .notFound }
        return .step(name, step)
    }

    /// The methods this resource answers, in the order the `Allow` header lists them.
    public var methods: [String] {
        switch self {
        case .collection: CounterResource.readMethods
        case .counter: CounterResource.counterMethods
        case .step: CounterResource.stepMethods
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
