import Testing
@testable import CounterCore

/// A fixed clock so bodies can be compared byte for byte.
let fixedTime = Timestamp(seconds: 1_764_417_600, microseconds: 123_000)
let router = Router(maxBodyBytes: 1024, clock: { fixedTime })

@Suite("Router: method x path x status")
struct RouterTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let method: String
        let path: String
        let status: Int
        let allow: String?
        var testDescription: String { "\(method) \(path) -> \(status)" }
    }

    static let matrix: [Case] = {
        var cases: [Case] = []
        let methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
        for route in Route.allCases {
            for method in methods {
                let allowed = route.methods.contains(method)
                cases.append(Case(method: method, path: route.rawValue, status: allowed ? 200 : 405,
                                  allow: allowed ? nil : route.methods.joined(separator: ", ")))
            }
        }
        for path in ["/", "/read/", "/READ", "/reads", "/write/x", "", "/health/", "/metrics", "//read"] {
            for method in ["GET", "POST"] {
                cases.append(Case(method: method, path: path, status: 404, allow: nil))
            }
        }
        return cases
    }()

    @Test(arguments: matrix)
    func statusMatrix(_ entry: Case) {
        let store = MemoryCounterStore(stored: "5")
        let response = router.respond(to: RequestHead(method: entry.method, path: entry.path), store: store)
        #expect(response.status.code == entry.status)
        #expect(response.header("Allow") == entry.allow)
        #expect(response.contentType == (entry.status == 200 ? .json : .problemJSON))
        if entry.status != 200 {
            #expect(store.writes == 0, "a rejected request must not touch the counter")
        }
    }

    @Test func readsZeroForMissingKeyAndNeverWrites() {
        let store = MemoryCounterStore()
        let response = router.respond(to: RequestHead(method: "GET", path: "/read"), store: store)
        #expect(response.bodyText == #"{"value":0,"timestamp":1764417600.123000}"#)
        #expect(store.stored == nil)
        #expect(store.writes == 0)
    }

    @Test func writeIncrementsAndReturnsNewValue() {
        let store = MemoryCounterStore(stored: "42")
        let response = router.respond(to: RequestHead(method: "POST", path: "/write"), store: store)
        #expect(response.status == .ok)
        #expect(response.bodyText == #"{"value":43,"operation":"increment","timestamp":1764417600.123000}"#)
        #expect(store.stored == "43")
    }

    @Test func resetSetsZero() {
        let store = MemoryCounterStore(stored: "42")
        let response = router.respond(to: RequestHead(method: "POST", path: "/reset"), store: store)
        #expect(response.bodyText == #"{"value":0,"operation":"reset","timestamp":1764417600.123000}"#)
        #expect(store.stored == "0")
    }

    @Test func healthAndLivez() {
        let store = MemoryCounterStore()
        #expect(router.respond(to: RequestHead(method: "GET", path: "/health"), store: store).bodyText
            == #"{"status":"healthy","redis":"connected","timestamp":1764417600.123000}"#)
        #expect(router.respond(to: RequestHead(method: "GET", path: "/livez"), store: store).bodyText == #"{"status":"alive"}"#)
    }

    @Test func unhealthyWhenStoreUnavailable() {
        let store = MemoryCounterStore()
        store.failure = .unavailable(reason: "connection refused")
        let response = router.respond(to: RequestHead(method: "GET", path: "/health"), store: store)
        #expect(response.status == .serviceUnavailable)
        #expect(response.contentType == .json)
        #expect(response.header("Retry-After") == "1")
        #expect(response.bodyText == #"{"status":"unhealthy","redis":"disconnected","error":"Redis unavailable","timestamp":1764417600.123000}"#)
    }

    @Test func livezNeverTouchesTheStore() {
        let store = MemoryCounterStore()
        store.failure = .unavailable(reason: "down")
        let response = router.respond(to: RequestHead(method: "GET", path: "/livez"), store: store)
        #expect(response.status == .ok)
    }

    @Test(arguments: [
        (CounterError.unavailable(reason: "refused"), 503),
        (CounterError.corruptValue, 500),
        (CounterError.overflow, 409),
        (CounterError.unexpected(message: "ERR something"), 500),
    ])
    func storeFailuresMapToStatus(_ failure: CounterError, _ status: Int) {
        for (method, path) in [("GET", "/read"), ("POST", "/write"), ("POST", "/reset")] {
            let store = MemoryCounterStore(stored: "7")
            store.failure = failure
            let response = router.respond(to: RequestHead(method: method, path: path), store: store)
            #expect(response.status.code == status, "\(method) \(path)")
            #expect(response.contentType == .problemJSON)
            #expect(store.stored == "7", "a failed operation leaves the value alone")
        }
    }

    @Test func corruptValueIsNotOverwrittenByWrite() {
        let store = MemoryCounterStore(stored: "not-a-number")
        let write = router.respond(to: RequestHead(method: "POST", path: "/write"), store: store)
        #expect(write.status == .internalServerError)
        #expect(store.stored == "not-a-number")
        let read = router.respond(to: RequestHead(method: "GET", path: "/read"), store: store)
        #expect(read.status == .internalServerError)
        #expect(read.bodyText.contains("not a 64-bit integer"))
    }

    @Test func overflowIsAConflictAndKeepsTheValue() {
        let store = MemoryCounterStore(stored: String(Int64.max))
        let response = router.respond(to: RequestHead(method: "POST", path: "/write"), store: store)
        #expect(response.status == .conflict)
        #expect(store.stored == String(Int64.max))
    }

    @Test(arguments: [
        ("", 200), ("0", 200), ("2", 200), ("1024", 200),
        ("1025", 413), ("99999999999999999999999", 413),
        ("-1", 400), ("+5", 400), ("abc", 400), ("1 2", 400), ("0x10", 400),
    ])
    func contentLength(_ value: String, _ status: Int) {
        let store = MemoryCounterStore()
        let response = router.respond(to: RequestHead(method: "POST", path: "/write", contentLength: value), store: store)
        #expect(response.status.code == status)
        #expect(store.writes == (status == 200 ? 1 : 0))
    }
}

@Suite("What the router tells the metrics")
struct RoutedTests {
    let router = Router(clock: { Timestamp(seconds: 1_764_417_600, microseconds: 0) },
                        exposition: { Response(status: .ok, contentType: .prometheusText, body: Array("up 1\n".utf8)) })

    @Test func metricsIsRoutedLikeAnyPath() {
        let store = MemoryCounterStore()
        let scrape = router.route(RequestHead(method: "GET", path: "/metrics"), store: store)
        #expect(scrape.endpoint == .metrics && scrape.response.status == .ok && scrape.response.bodyText == "up 1\n")
        let post = router.route(RequestHead(method: "POST", path: "/metrics"), store: store)
        #expect(post.endpoint == .metrics && post.response.status == .methodNotAllowed && post.response.header("Allow") == "GET")
        // Without an exposition (the unit tests' router, a build without metrics) it is unknown.
        let plain = Router().route(RequestHead(method: "GET", path: "/metrics"), store: store)
        #expect(plain.endpoint == .unknown && plain.response.status == .notFound)
    }

    @Test func aReplayIsAValueNotAHeaderReadBack() {
        let store = MemoryCounterStore()
        let first = router.route(RequestHead(method: "POST", path: "/write", idempotencyKey: "k-1", client: "c"), store: store)
        let again = router.route(RequestHead(method: "POST", path: "/write", idempotencyKey: "k-1", client: "c"), store: store)
        #expect(first.endpoint == .api(.write) && !first.replayed)
        #expect(again.replayed && again.response.header("Idempotent-Replayed") == "true")
        #expect(router.route(RequestHead(method: "GET", path: "/nope"), store: store).endpoint == .unknown)
    }
}

/// The fast path match agrees with the plain one on every route and near miss.
@Test func routeByPathIsRouteByRawValue() {
    let paths = Route.allCases.map(\.rawValue) + ["", "/", "/rea", "/reads", "/READ", "/writ", "/wrote", "/resex", "/livex", "/healtx",
                                                  "/health/", "/v1/counters", "/metrics", "/readx", "xread", "/lives"]
    for path in paths {
        #expect(Route(path: path) == Route(rawValue: path), "\(path)")
    }
}
