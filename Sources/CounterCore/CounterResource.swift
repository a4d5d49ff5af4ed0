#if canImport(Glibc)
import Glibc
#endif

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
        var path = path
        // Scanned in place over the path's UTF-8 bytes (this runs on every named request): no
        // array of segments, no generic string code.
        let parsed: Result<CounterResource?, APIError> = path.withUTF8 { bytes in
            let root: StaticString = "/v1/counters"
            guard CounterResource.starts(bytes, with: root) else { return .success(nil) }
            let rootCount = root.utf8CodeUnitCount
            if bytes.count == rootCount { return .success(.collection) }
            guard bytes[rootCount] == UInt8(ascii: "/") else { return .success(nil) }  // /v1/countersX is another path
            let nameStart = rootCount + 1
            var nameEnd = nameStart
            while nameEnd < bytes.count, bytes[nameEnd] != UInt8(ascii: "/") { nameEnd += 1 }
            guard let name = CounterName(bytes: UnsafeBufferPointer(rebasing: bytes[nameStart..<nameEnd])) else {
                // A path with more segments than any resource is a 404 whatever its name.
                if nameEnd < bytes.count, bytes[(nameEnd + 1)...].contains(UInt8(ascii: "/")) { return .failure(.notFound) }
                return .failure(.badRequest(detail: "Invalid counter name: a name is \(CounterName.rule)"))
            }
            if nameEnd == bytes.count { return .success(.counter(name)) }
            let rest = UnsafeBufferPointer(rebasing: bytes[(nameEnd + 1)...])
            if CounterResource.equals(rest, "increment") { return .success(.step(name, .increment)) }
            if CounterResource.equals(rest, "decrement") { return .success(.step(name, .decrement)) }
            if CounterResource.equals(rest, "badge.svg") { return .success(.badge(name)) }
            return .failure(.notFound)
        }
        return try parsed.get()
    }

    private static func starts(_ bytes: UnsafeBufferPointer<UInt8>, with literal: StaticString) -> Bool {
        bytes.count >= literal.utf8CodeUnitCount && memcmp(bytes.baseAddress!, literal.utf8Start, literal.utf8CodeUnitCount) == 0
    }

    private static func equals(_ bytes: UnsafeBufferPointer<UInt8>, _ literal: StaticString) -> Bool {
        bytes.count == literal.utf8CodeUnitCount && starts(bytes, with: literal)
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

