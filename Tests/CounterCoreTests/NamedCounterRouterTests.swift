import Foundation
import Testing
@testable import CounterCore

/// The named-counter routes (`/v1/counters`) over the memory store: every route, its errors, and
/// exactly-once retries.
@Suite("Router: named counters")
struct NamedCounterRouterTests {
    func send(_ store: MemoryCounterStore, _ method: String, _ path: String, query: String = "", body: String? = nil,
              contentType: String? = nil, key: String? = nil, namespace: CounterPrefix = .none) -> (Response, [String: Any]) {
        let bytes = Array((body ?? "").utf8)
        let head = RequestHead(method: method, path: path, contentLength: body.map { String($0.utf8.count) }, idempotencyKey: key,
                               client: "ci", named: NamedParts(query: query, contentType: contentType, body: bytes, namespace: namespace))
        let response = router.respond(to: head, store: store)
        let json = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] ?? [:]
        return (response, json)
    }

    func name(_ text: String) -> CounterName { CounterName(text)! }

    @Test func incrementCreatesAtZeroThenCountsBy() {
        let store = MemoryCounterStore()
        var (response, body) = send(store, "POST", "/v1/counters/page-views/increment")
        #expect(response.status.code == 200 && body["value"] as? Int64 == 1 && body["name"] as? String == "page-views")
        #expect(body["operation"] as? String == "increment")
        (response, body) = send(store, "POST", "/v1/counters/page-views/increment", query: "by=41")
        #expect(body["value"] as? Int64 == 42)
        (response, body) = send(store, "POST", "/v1/counters/page-views/decrement", query: "by=50")
        #expect(body["value"] as? Int64 == -8 && body["operation"] as? String == "decrement")
        (response, body) = send(store, "GET", "/v1/counters/page-views")
        #expect(response.status.code == 200 && body["value"] as? Int64 == -8)
        #expect((try? store.value(of: name("page-views"))) == -8)
    }

    @Test func aMissingCounterIs404AndReadingNeverCreates() {
        let store = MemoryCounterStore()
        let (response, body) = send(store, "GET", "/v1/counters/nope")
        #expect(response.status.code == 404 && response.contentType == .problemJSON)
        #expect(body["detail"] as? String == "No counter is named nope")
        #expect(store.named.isEmpty && store.writes == 0)
    }

    @Test(arguments: [("increment", "9223372036854775807", "1"), ("decrement", "-9223372036854775808", "1"),
                      ("increment", "1", "9223372036854775807"), ("decrement", "-2", "9223372036854775807")])
    func overflowIs409AndNothingChanges(_ step: String, _ stored: String, _ by: String) {
        let store = MemoryCounterStore()
        store.named[name("edge")] = stored
        let (response, body) = send(store, "POST", "/v1/counters/edge/\(step)", query: "by=\(by)")
        #expect(response.status.code == 409)
        #expect((body["detail"] as? String)?.contains("64-bit range") == true)
        #expect(store.named[name("edge")] == stored && store.writes == 0)
    }

    @Test(arguments: ["by=0", "by=-1", "by=x", "by=9223372036854775808", "by=1&by=2", "by=%zz"])
    func badStepsAre400(_ query: String) {
        let store = MemoryCounterStore()
        let (response, _) = send(store, "POST", "/v1/counters/a/increment", query: query)
        #expect(response.status.code == 400 && response.contentType == .problemJSON)
        #expect(store.writes == 0)
    }

    @Test func putSetsAndCarriesOverCounts() {
        let store = MemoryCounterStore()
        var (response, body) = send(store, "PUT", "/v1/counters/migrated", body: #"{"value": 123456789012}"#, contentType: "application/json")
        #expect(response.status.code == 200 && body["value"] as? Int64 == 123_456_789_012 && body["operation"] as? String == "set")
        (response, body) = send(store, "PUT", "/v1/counters/migrated", body: " {\n\"value\" : -5 } ", contentType: "application/json; charset=utf-8")
        #expect(response.status.code == 200 && body["value"] as? Int64 == -5)
    }

    /// Any JSON number whose value is an integer in range, as JSON Schema's `integer` reads it.
    @Test(arguments: [("5", Int64(5)), ("5.0", 5), ("-45e14", -4_500_000_000_000_000), ("-4503599627370496.0", -4_503_599_627_370_496),
                      ("5E+2", 500), ("500e-2", 5), ("0.000e-5", 0), ("-0", 0), ("0e999", 0), ("9223372036854775807", Int64.max),
                      ("-9223372036854775808", Int64.min), ("92233720368547758.07e2", Int64.max)])
    func integralNumbersAreValues(_ number: String, _ value: Int64) {
        let (response, body) = send(MemoryCounterStore(), "PUT", "/v1/counters/n", body: "{\"value\": \(number)}", contentType: "application/json")
        #expect(response.status.code == 200 && body["value"] as? Int64 == value, "\(number)")
    }

    @Test(arguments: [#"{"value": "5"}"#, #"{"value": 1.5}"#, #"{"value": 5e-1}"#, #"{"value": 1e19}"#, #"{"value": - 5}"#,
                      #"{"value": 5.}"#, #"{"value": .5}"#, #"{"value": 1e}"#, #"{"value": 1e99999}"#, #"{"valeu": 5}"#, #"{"value": 5, "x": 1}"#, #"{"value": 9223372036854775808}"#,
                      "", "5", "[5]", #"{"value": 01}"#, #"{"value": 5}x"#])
    func badBodiesAre400(_ text: String) {
        let store = MemoryCounterStore()
        let (response, body) = send(store, "PUT", "/v1/counters/a", body: text, contentType: "application/json")
        #expect(response.status.code == 400)
        #expect((body["detail"] as? String)?.contains(#"{"value": N}"#) == true)
        #expect(store.named.isEmpty)
    }

    @Test(arguments: [nil, "text/plain", "application/x-www-form-urlencoded", "application/jsonx"])
    func putTakesJSONOnly(_ type: String?) {
        let (response, _) = send(MemoryCounterStore(), "PUT", "/v1/counters/a", body: #"{"value": 1}"#, contentType: type)
        #expect(response.status.code == 415 && response.contentType == .problemJSON)
    }

    @Test func deleteIs204Then404() {
        let store = MemoryCounterStore()
        store.named[name("gone")] = "3"
        var (response, _) = send(store, "DELETE", "/v1/counters/gone")
        #expect(response.status.code == 204 && response.body.isEmpty)
        (response, _) = send(store, "DELETE", "/v1/counters/gone")
        #expect(response.status.code == 404)
    }

    @Test func retriesWithAnIdempotencyKeyAreAnsweredOnce() {
        let store = MemoryCounterStore()
        let (first, body) = send(store, "POST", "/v1/counters/a/increment", query: "by=5", key: "k1")
        let (again, replay) = send(store, "POST", "/v1/counters/a/increment", query: "by=5", key: "k1")
        #expect(first.status.code == 200 && again.status.code == 200 && replay["value"] as? Int64 == body["value"] as? Int64)
        #expect(again.headers.contains { $0.name == "Idempotent-Replayed" && $0.value == "true" })
        #expect((try? store.value(of: name("a"))) == 5)
        // The same key for another argument, or another operation: 422, nothing done.
        let (other, problem) = send(store, "POST", "/v1/counters/a/increment", query: "by=6", key: "k1")
        #expect(other.status.code == 422 && (problem["detail"] as? String)?.contains("increment 5") == true)
        let (decrement, _) = send(store, "POST", "/v1/counters/a/decrement", query: "by=5", key: "k1")
        #expect(decrement.status.code == 422 && (try? store.value(of: name("a"))) == 5)
        // PUT and DELETE replay too.
        _ = send(store, "PUT", "/v1/counters/a", body: #"{"value": 9}"#, contentType: "application/json", key: "k2")
        store.named[name("a")] = "1"
        let (put, putBody) = send(store, "PUT", "/v1/counters/a", body: #"{"value": 9}"#, contentType: "application/json", key: "k2")
        #expect(put.status.code == 200 && putBody["value"] as? Int64 == 9 && (try? store.value(of: name("a"))) == 1)
        let (deleted, _) = send(store, "DELETE", "/v1/counters/a", key: "k3")
        let (redeleted, _) = send(store, "DELETE", "/v1/counters/a", key: "k3")
        #expect(deleted.status.code == 204 && redeleted.status.code == 204)
        #expect(redeleted.headers.contains { $0.name == "Idempotent-Replayed" })
    }

    @Test func namespacesScopeEveryRoute() {
        let store = MemoryCounterStore()
        store.named[name("billing:acme")] = "1"
        store.named[name("other")] = "2"
        let billing = CounterPrefix("billing:")!
        #expect(send(store, "GET", "/v1/counters/billing:acme", namespace: billing).0.status.code == 200)
        for (method, path) in [("GET", "/v1/counters/other"), ("POST", "/v1/counters/other/increment"), ("DELETE", "/v1/counters/other"),
                               ("PUT", "/v1/counters/other")] {
            let (response, body) = send(store, method, path, body: method == "PUT" ? #"{"value": 1}"# : nil,
                                        contentType: "application/json", namespace: billing)
            #expect(response.status.code == 403, "\(method) \(path)")
            #expect((body["detail"] as? String)?.contains(#""billing:""#) == true)
        }
        #expect(store.named[name("other")] == "2" && store.writes == 0)
        // A listing stays inside the namespace; a prefix outside it is refused.
        let (list, listed) = send(store, "GET", "/v1/counters", namespace: billing)
        #expect(list.status.code == 200 && (listed["counters"] as? [[String: Any]])?.map { $0["name"] as? String } == ["billing:acme"])
        #expect(send(store, "GET", "/v1/counters", query: "prefix=oth", namespace: billing).0.status.code == 403)
        #expect(send(store, "GET", "/v1/counters", query: "prefix=billing:a", namespace: billing).0.status.code == 200)
        #expect(send(store, "GET", "/v1/counters/x", namespace: .unusable).0.status.code == 403)
    }

    @Test func listingPagesThroughEveryCounterOnce() {
        let store = MemoryCounterStore()
        for index in 0..<25 { store.named[name("c\(index)")] = String(index) }
        store.named[name("other")] = "0"
        var seen: [String] = []
        var cursor = ""
        var pages = 0
        repeat {
            let (response, body) = send(store, "GET", "/v1/counters", query: "prefix=c&limit=10" + (cursor.isEmpty ? "" : "&cursor=\(cursor)"))
            #expect(response.status.code == 200)
            let counters = body["counters"] as? [[String: Any]] ?? []
            #expect(counters.count <= 10)
            seen += counters.compactMap { $0["name"] as? String }
            cursor = body["next"] as? String ?? ""
            pages += 1
        } while !cursor.isEmpty && pages < 10
        #expect(pages == 3 && Set(seen).count == 25 && seen.count == 25)
    }

    @Test(arguments: ["limit=0", "limit=1001", "limit=x", "prefix=a%20b", "cursor=not a name"])
    func badListingsAre400(_ query: String) {
        let (response, _) = send(MemoryCounterStore(), "GET", "/v1/counters", query: query)
        #expect(response.status.code == 400 && response.contentType == .problemJSON)
    }

    @Test(arguments: [("PATCH", "/v1/counters", "GET, HEAD"), ("POST", "/v1/counters", "GET, HEAD"),
                      ("POST", "/v1/counters/a", "GET, HEAD, PUT, DELETE"), ("GET", "/v1/counters/a/increment", "POST"),
                      ("PUT", "/v1/counters/a/decrement", "POST")])
    func wrongMethodsAre405WithAllow(_ method: String, _ path: String, _ allow: String) {
        let (response, _) = send(MemoryCounterStore(), method, path)
        #expect(response.status.code == 405)
        #expect(response.headers.first { $0.name == "Allow" }?.value == allow)
    }

    @Test func storeFailuresAreTheUsualProblems() {
        let store = MemoryCounterStore()
        store.failure = .unavailable(reason: "down")
        #expect(send(store, "GET", "/v1/counters/a").0.status.code == 503)
        #expect(send(store, "POST", "/v1/counters/a/increment").0.status.code == 503)
        store.failure = nil
        store.named[name("bad")] = "not a number"
        #expect(send(store, "GET", "/v1/counters/bad").0.status.code == 500)
    }

    @Test func theMetricsLabelIsTheTemplateNeverTheName() {
        let store = MemoryCounterStore()
        #expect(router.route(RequestHead(method: "GET", path: "/v1/counters/secret-name"), store: store).endpoint == .counters(.counter))
        #expect(router.route(RequestHead(method: "POST", path: "/v1/counters/x/decrement"), store: store).endpoint == .counters(.decrement))
        #expect(router.route(RequestHead(method: "GET", path: "/v1/counters"), store: store).endpoint == .counters(.collection))
        #expect(router.route(RequestHead(method: "GET", path: "/v1/counters/a b"), store: store).endpoint == .counters(.counter))
    }

    @Test func namedRecordsRoundTrip() throws {
        for write in [NamedWrite.increment(by: 5), .decrement(by: Int64.max), .set(Int64.min), .set(0), .delete] {
            #expect(NamedWrite(fingerprint: Substring(write.fingerprint)) == write)
        }
        let (write, outcome) = try #require(NamedRecord.parse("decrement/3:-7:1764417600.123000"))
        #expect(write == .decrement(by: 3) && outcome.value == -7)
        for bad in ["increment/0:1:1764417600.000000", "delete/1:1:1764417600.000000", "reset/0:0:1764417600.000000", "set/x:1:1",
                    "increment/1:1"] {
            #expect(NamedRecord.parse(bad) == nil, "\(bad)")
        }
    }
}
