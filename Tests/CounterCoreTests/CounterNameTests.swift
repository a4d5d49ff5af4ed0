import Testing
@testable import CounterCore

@Suite("Counter names and prefixes")
struct CounterNameTests {
    @Test(arguments: ["a", "Z", "0", "...", ".a", "page-views", "billing:acme:api_calls", "v1.2.3", "A.b_C-d:9",
                      String(repeating: "x", count: 128)])
    func valid(_ text: String) {
        #expect(CounterName(text)?.text == text)
    }

    @Test(arguments: ["", ".", "..", " ", "a b", "a/b", "a{b", "a}b", "a*", "a?", "a[1]", "a\\b", "é", "a%20b", "a\u{0}",
                      "a\n", "a\"b", "a+b", "a=b", "a,b", "a;b", "a#b", String(repeating: "x", count: 129)])
    func invalid(_ text: String) {
        #expect(CounterName(text) == nil)
    }

    @Test func namesAreCaseSensitive() {
        #expect(CounterName("Views") != CounterName("views"))
    }

    @Test func storageKeysShareTheNamesHashTag() throws {
        let name = try #require(CounterName("billing:acme"))
        let key = IdempotencyKey(client: "ci", value: "k1")
        #expect(name.storageKey == "{c:billing:acme}")
        #expect(name.idempotencyKey(for: key) == "{c:billing:acme}:idempotency:ci:k1")
        #expect(IdempotencyKey.hashTag(of: name.storageKey) == IdempotencyKey.hashTag(of: name.idempotencyKey(for: key)))
    }

    @Test func aValueKeyNamesItsCounterAndNothingElseDoes() {
        #expect(CounterName(storageKey: "{c:page-views}")?.text == "page-views")
        // An idempotency record whose key ends with } matches the listing's SCAN pattern: refused here.
        for other in ["{c:a}:idempotency:ci:x}", "api_counter", "{api_counter}:idempotency:x:y", "{c:}", "{c:a b}", "c:a"] {
            #expect(CounterName(storageKey: other) == nil, "\(other)")
        }
    }

    @Test func prefixes() throws {
        let billing = try #require(CounterPrefix("billing:"))
        #expect(try #require(CounterName("billing:acme")).hasPrefix(billing))
        #expect(try !#require(CounterName("billin")).hasPrefix(billing))
        #expect(try #require(CounterName("anything")).hasPrefix(.none))
        #expect(billing.contains(try #require(CounterPrefix("billing:acme"))))
        #expect(!billing.contains(.none))
        #expect(CounterPrefix.none.contains(billing))
        #expect(billing.scanPattern == "{c:billing:*}")
        #expect(CounterPrefix("a*") == nil && CounterPrefix("a b") == nil && CounterPrefix(String(repeating: "x", count: 129)) == nil)
    }
}
