import Testing
@testable import CounterCore

/// A clock that ticks one second per call, so a replay's timestamp is visibly the first one's.
final class TickingClock: @unchecked Sendable {
    // Tests call it from one task at a time.
    private var seconds: Int64 = 1_764_417_600
    func now() -> Timestamp {
        seconds += 1
        return Timestamp(seconds: seconds, microseconds: 0)
    }
}

@Suite("Idempotency-Key")
struct IdempotencyTests {
    func write(_ router: Router, _ store: MemoryCounterStore, _ path: String = "/write", key: String?, client: String = "ops") -> Response {
        router.respond(to: RequestHead(method: "POST", path: path, idempotencyKey: key, client: client), store: store)
    }

    @Test func retryReplaysTheFirstResponseWithoutCountingAgain() {
        let clock = TickingClock()
        let router = Router(clock: { clock.now() })
        let store = MemoryCounterStore()
        let first = write(router, store, key: #""order-1""#)
        let again = write(router, store, key: #""order-1""#)
        #expect(first.status == .ok && first.header("Idempotent-Replayed") == nil)
        #expect(again.status == .ok && again.header("Idempotent-Replayed") == "true")
        #expect(again.body == first.body, "same status, same value, same timestamp")
        #expect(store.stored == "1" && store.writes == 1)
        let other = write(router, store, key: #""order-2""#)
        #expect(other.bodyText.hasPrefix(#"{"value":2,"#))
        let none = write(router, store, key: nil)
        #expect(none.bodyText.hasPrefix(#"{"value":3,"#))
    }

    @Test func keysAreScopedToTheClient() {
        let store = MemoryCounterStore()
        _ = write(router, store, key: #""k""#, client: "billing")
        let other = write(router, store, key: #""k""#, client: "dashboards")
        #expect(other.header("Idempotent-Replayed") == nil)
        #expect(store.stored == "2")
    }

    @Test func aKeyUsedForWriteCannotReset() {
        let store = MemoryCounterStore()
        _ = write(router, store, key: #""k""#)
        let reset = write(router, store, "/reset", key: #""k""#)
        #expect(reset.status == .unprocessableContent)
        #expect(reset.contentType == .problemJSON)
        #expect(reset.bodyText.contains("first used for /write"))
        #expect(store.stored == "1")
        let resetReplay = write(router, store, "/reset", key: #""r""#)
        #expect(resetReplay.status == .ok)
        #expect(write(router, store, "/reset", key: #""r""#).header("Idempotent-Replayed") == "true")
    }

    @Test(arguments: [#""""#, "\"\u{01}\"", "a\tb", "\"é\"", "é", "\u{7F}",
                      String(repeating: "k", count: 256), "\"" + String(repeating: "k", count: 256) + "\""])
    func invalidKeysAre400AndCountNothing(_ header: String) {
        let store = MemoryCounterStore()
        let response = write(router, store, key: header)
        #expect(response.status == .badRequest)
        #expect(response.bodyText.contains("Invalid Idempotency-Key"))
        #expect(store.writes == 0)
    }

    @Test(arguments: [
        // Bare values, as most clients send them.
        ("8e03978e-40d5-43e8-bc93-6894a57f9324", "8e03978e-40d5-43e8-bc93-6894a57f9324"), ("abc", "abc"),
        ("with space", "with space"), ("~!#$%&'()*+,-./:;<=>?@[]^_`{|}", "~!#$%&'()*+,-./:;<=>?@[]^_`{|}"),
        (String(repeating: "k", count: 255), String(repeating: "k", count: 255)),
        // Valid Structured Field strings are unquoted.
        (#""abc""#, "abc"), (#""a\"b""#, #"a"b"#), (#""a\\b""#, #"a\b"#), (#""with space""#, "with space"),
        ("\"" + String(repeating: "k", count: 255) + "\"", String(repeating: "k", count: 255)),
        // Quotes that do not make a valid string are part of the key, as sent.
        (#""a"#, #""a"#), (#"a""#, #"a""#), (#""a\b""#, #""a\b""#), (#""a"b""#, #""a"b""#), (#"""#, #"""#),
    ])
    func validKeys(_ header: String, _ value: String) {
        #expect(IdempotencyKey(header: header, client: "c")?.value == value)
    }

    @Test func quotedAndBareFormsAreOneKey() {
        let store = MemoryCounterStore()
        let first = write(router, store, key: "8e03978e-40d5-43e8-bc93-6894a57f9324")
        let again = write(router, store, key: #""8e03978e-40d5-43e8-bc93-6894a57f9324""#)
        #expect(first.status == .ok && again.status == .ok)
        #expect(again.header("Idempotent-Replayed") == "true")
        #expect(store.writes == 1)
    }

    @Test(arguments: [
        ("api_counter", "{api_counter}:idempotency:ops:k"),
        ("tenant:{a}:hits", "{a}:idempotency:ops:k"),
        ("{hits}", "{hits}:idempotency:ops:k"),
    ])
    func recordsShareTheCounterHashSlot(_ counterKey: String, _ storage: String) {
        #expect(IdempotencyKey(client: "ops", value: "k").storageKey(counterKey: counterKey) == storage)
    }

    @Test(arguments: ["a{}b", "a}b", "{", "x{y"])
    func countKeysWithBracesMustHaveAHashTag(_ key: String) {
        #expect(throws: ConfigError.self) { try Config(environment: ["COUNTER_KEY": key]) }
    }

    /// Records as the script writes them (test_idempotency.py parses what the real script wrote
    /// in a real Redis; these are the edges and what is not a record).
    @Test func recordsAreParsed() {
        let parsed = IdempotencyRecord.parse("increment:9223372036854775807:1764417600.000042")
        #expect(parsed?.0 == .increment)
        #expect(parsed?.1 == WriteOutcome(value: Int64.max, replayed: false, timestamp: Timestamp(seconds: 1_764_417_600, microseconds: 42)))
        #expect(IdempotencyRecord.parse("reset:0:1764417600.000000")?.1.value == 0)
        #expect(IdempotencyRecord.parse("increment:-5:1.000001")?.1.value == -5)
        for bad in ["", "increment:1", "decrement:1:1.000000", "increment:x:1.000000", "reset:0:1.5", "reset:0:1.00000a",
                    "increment:01:1.000000", "increment:9223372036854775808:1.000000"] {
            #expect(IdempotencyRecord.parse(bad) == nil, "\(bad)")
        }
    }
}
