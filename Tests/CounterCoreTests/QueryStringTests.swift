import Testing
@testable import CounterCore

@Suite("Query strings")
struct QueryStringTests {
    @Test func decodesEscapesAndPlus() throws {
        let query = try QueryString("prefix=billing%3Aacme&label=page+views&empty=&flag")
        #expect(query["prefix"] == "billing:acme")
        #expect(query["label"] == "page views")
        #expect(query["empty"] == "" && query["flag"] == "" && query["absent"] == nil)
    }

    @Test(arguments: ["a=%", "a=%4", "a=%zz", "a=%00", "a=%0A", "a=%7F", "a=%C3%28", "=x", "a=1&a=2"])
    func refusesMalformedQueries(_ text: String) {
        #expect(throws: APIError.self) { try QueryString(text) }
    }

    @Test func refusesOverlongQueries() {
        #expect(throws: APIError.self) { try QueryString("a=" + String(repeating: "x", count: QueryString.maxLength)) }
    }

    @Test func integersInRange() throws {
        let query = try QueryString("by=5&limit=1000&neg=-3")
        #expect(try query.integer("by", in: 1...Int64.max, default: 1) == 5)
        #expect(try query.integer("missing", in: 1...10, default: 7) == 7)
        #expect(try query.integer("neg", in: -10...10, default: 0) == -3)
        #expect(throws: APIError.badRequest(detail: "limit must be an integer from 1 to 100")) {
            try query.integer("limit", in: 1...100, default: 50)
        }
        for bad in ["by=0", "by=-1", "by=+1", "by=01", "by=1.5", "by=", "by=9223372036854775808", "by=%201"] {
            #expect(throws: APIError.self, "\(bad)") { try QueryString(bad).integer("by", in: 1...Int64.max, default: 1) }
        }
    }
}

@Suite("Named-counter paths")
struct CounterResourceTests {
    @Test func parsesEveryResource() throws {
        #expect(try CounterResource.parse("/v1/counters") == .collection)
        #expect(try CounterResource.parse("/v1/counters/views") == .counter(try #require(CounterName("views"))))
        #expect(try CounterResource.parse("/v1/counters/a:b/increment") == .step(try #require(CounterName("a:b")), .increment))
        #expect(try CounterResource.parse("/v1/counters/a/decrement") == .step(try #require(CounterName("a")), .decrement))
    }

    @Test(arguments: ["/read", "/v1", "/v1/counter", "/v1/countersx", "/v2/counters/a"])
    func otherPathsAreNotCounters(_ path: String) throws {
        #expect(try CounterResource.parse(path) == nil)
    }

    @Test(arguments: ["/v1/counters/a/reset", "/v1/counters/a/increment/x", "/v1/counters/a/", "/v1/counters/a/b/c"])
    func unknownSubResourcesAre404(_ path: String) {
        #expect(throws: APIError.notFound) { try CounterResource.parse(path) }
    }

    @Test(arguments: ["/v1/counters/", "/v1/counters/a b", "/v1/counters/a*", "/v1/counters/" + String(repeating: "x", count: 129)])
    func badNamesAre400NamingTheRule(_ path: String) {
        #expect(throws: APIError.badRequest(detail: "Invalid counter name: a name is \(CounterName.rule)")) {
            try CounterResource.parse(path)
        }
    }
}
