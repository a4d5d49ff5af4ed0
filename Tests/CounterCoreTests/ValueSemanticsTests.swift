import CounterCore
import Logging
import Testing

/// What the value types promise besides the router's use of them: equality that compares every
/// part (the tests' own comparisons of responses and pages rest on it), and their descriptions.
@Suite("Value semantics")
struct ValueSemanticsTests {
    @Test func responsesAreEqualOnlyWhenEveryPartIs() {
        let base = Response(status: .ok, contentType: .json, headers: [(name: "ETag", value: "\"a\"")], body: Array("{}".utf8))
        #expect(base == Response(status: .ok, contentType: .json, headers: [(name: "ETag", value: "\"a\"")], body: Array("{}".utf8)))
        #expect(base != Response(status: .notFound, contentType: .json, headers: [(name: "ETag", value: "\"a\"")], body: Array("{}".utf8)))
        #expect(base != Response(status: .ok, contentType: .problemJSON, headers: [(name: "ETag", value: "\"a\"")], body: Array("{}".utf8)))
        #expect(base != Response(status: .ok, contentType: .json, headers: [(name: "ETag", value: "\"b\"")], body: Array("{}".utf8)))
        #expect(base != Response(status: .ok, contentType: .json, headers: [(name: "ETag", value: "\"a\"")], body: Array("[]".utf8)))
        #expect(base != Response(status: .ok, contentType: .json, headers: [(name: "ETag", value: "\"a\"")], body: Array("{}".utf8),
                                 cacheControl: .publicBadge))
        #expect(HTTPStatus.notFound.description == "404 Not Found")
    }

    @Test func queryStringsAndPagesCompareInOrder() throws {
        #expect(try QueryString("a=1&b=2") == QueryString("a=1&b=2"))
        #expect(try QueryString("a=1&b=2") != QueryString("b=2&a=1"))
        #expect(try QueryString("a=1") != QueryString("a=2"))
        let a = try #require(CounterName("a")), b = try #require(CounterName("b"))
        #expect(CounterPage(counters: [(a, 1), (b, 2)], next: nil) == CounterPage(counters: [(a, 1), (b, 2)], next: nil))
        #expect(CounterPage(counters: [(a, 1), (b, 2)], next: nil) != CounterPage(counters: [(a, 1), (b, 3)], next: nil))
        #expect(CounterPage(counters: [(a, 1)], next: nil) != CounterPage(counters: [(a, 1)], next: "1-0"))
        #expect(CounterPage(counters: [(a, 1)], next: nil) != CounterPage(counters: [(b, 1)], next: nil))
        #expect("\(a)" == "a")
    }

    @Test func namedPartsCompareEveryField() {
        let parts = NamedParts(query: "x=1", contentType: "application/json", body: [1], ifNoneMatch: "\"t\"")
        #expect(parts == NamedParts(query: "x=1", contentType: "application/json", body: [1], ifNoneMatch: "\"t\""))
        #expect(parts != NamedParts(query: "x=2", contentType: "application/json", body: [1], ifNoneMatch: "\"t\""))
        #expect(parts != NamedParts(query: "x=1", contentType: "application/json", body: [2], ifNoneMatch: "\"t\""))
        #expect(parts != NamedParts(query: "x=1", contentType: "application/json", body: [1], ifNoneMatch: nil))
    }

    @Test func configErrorsSayTheSettingWithOrWithoutItsValue() {
        #expect(ConfigError(setting: "REDIS_PORT", value: "abc", reason: "not a port").description == "invalid REDIS_PORT=\"abc\": not a port")
        #expect(ConfigError(setting: "REDIS_PORT", value: nil, reason: "required").description == "invalid REDIS_PORT: required")
    }

    @Test func aLoggersMetadataReadsBack() {
        var handler = JSONLogHandler(label: "test", fileDescriptor: -1)
        handler[metadataKey: "worker.id"] = "3"
        #expect(handler[metadataKey: "worker.id"] == "3")
        #expect(handler[metadataKey: "missing"] == nil)
    }
}
