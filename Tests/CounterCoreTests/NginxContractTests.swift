import Testing
@testable import CounterCore
#if canImport(Glibc)
import Glibc
#endif

/// nginx answers most errors itself and routes by exact location, so some facts are written twice:
/// in nginx/counter-api.conf and in the Swift code (and the route list once more in the OpenAPI
/// contract). These tests read the files and fail when the two sides disagree.
@Suite("nginx, OpenAPI and Swift agree")
struct NginxContractTests {
    static let root: String = {
        var path = #filePath
        for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }  // Tests/CounterCoreTests/x.swift
        return path
    }()

    static func read(_ relative: String) -> String {
        Config.readSmallFile(root + "/" + relative) ?? ""
    }

    let conf = NginxContractTests.read("nginx/counter-api.conf")
    let routes = Set(Route.allCases.map(\.rawValue))

    /// The entries of `map SOURCE $name { ... }` as (key, value) pairs: nginx's tokens, where a
    /// quoted string is one token and `;` ends a statement.
    func map(_ name: String) -> [(String, String)] {
        guard let start = conf.range(of: " $\(name) {") else { return [] }
        var entries: [(String, String)] = []
        // `wasQuoted`: "" is a word too (an empty key or value), unlike the space between words.
        var words: [String] = [], word = "", quoted = false, wasQuoted = false, comment = false
        for character in conf[start.upperBound...] {
            if comment { comment = character != "\n"; continue }
            if quoted {
                if character == "\"" { quoted = false } else { word.append(character) }
                continue
            }
            switch character {
            case "\"": quoted = true; wasQuoted = true
            case "#": comment = true
            case " ", "\n", ";", "}":
                if !word.isEmpty || wasQuoted { words.append(word); word = ""; wasQuoted = false }
                if character == ";" || character == "}" {
                    if words.count >= 2 { entries.append((words[0], words[1...].joined(separator: " "))) }
                    words = []
                }
                if character == "}" { return entries }
            default: word.append(character)
            }
        }
        return entries
    }

    @Test func filesWereFound() {
        #expect(conf.contains("server {"), "nginx/counter-api.conf read from \(NginxContractTests.root)")
    }

    @Test func publicLocationsAreTheRoutes() {
        var locations = Set<String>()
        for line in conf.split(separator: "\n") {
            let words = line.split(separator: " ")
            if words.count >= 3, words[0] == "location", words[1] == "=", words[2].hasPrefix("/"), !words[2].hasPrefix("/_") {
                locations.insert(String(words[2]))
            }
        }
        // The internal metrics server's locations are not API routes.
        locations.subtract(["/metrics", "/nginx_status"])
        #expect(locations == routes.union([CounterResource.root]))
        // And the named counters' own prefix location, which counter-fcgi's parser takes over.
        #expect(conf.contains("location ^~ \(CounterResource.root)/ {"))
    }

    /// The map entries for the named-counter routes (regexes), apart from the original routes'.
    func counterEntries(_ name: String) -> [(String, String)] { map(name).filter { $0.0.hasPrefix("~") } }

    @Test func allowedMethodsMatchTheRouter() {
        let allowed = map("allowed_methods").filter { $0.0 != "default" && $0.0 != "volatile" && !$0.0.hasPrefix("~") }
        #expect(Set(allowed.map(\.0)) == routes)
        for (path, methods) in allowed {
            #expect(Route(rawValue: path)?.methods.joined(separator: ", ") == methods, "\(path)")
        }
        // Named counters: each pattern's list is what the router answers for a path it matches.
        let counters = counterEntries("allowed_methods")
        #expect(counters.count == 4)
        for (pattern, methods) in counters {
            let regex = try! Regex(String(pattern.dropFirst()))
            let examples = ["/v1/counters", "/v1/counters/a:b", "/v1/counters/a/increment", "/v1/counters/a/decrement",
                            "/v1/counters/a/badge.svg"]
            #expect(examples.contains { $0.wholeMatch(of: regex) != nil }, "\(pattern) matches none of the routes")
            for example in examples where example.wholeMatch(of: regex) != nil {
                #expect(try! CounterResource.parse(example)?.methods.joined(separator: ", ") == methods, "\(example)")
            }
        }
    }

    @Test func edgeRouteLabelsAreTheRoutes() {
        let labels = map("edge_route").filter { $0.0 != "default" && !$0.0.hasPrefix("~") }
        #expect(Set(labels.map(\.0)) == routes && labels.allSatisfy { $0.0 == $0.1 })
        // Named counters: one label per route template, the router's own (CounterRoute).
        #expect(Set(counterEntries("edge_route").map(\.1)) == Set(CounterRoute.allCases.map(\.rawValue)))
        for (pattern, label) in counterEntries("edge_route") {
            let example = label.replacing("{name}", with: "some:name")
            #expect(example.wholeMatch(of: try! Regex(String(pattern.dropFirst()))) != nil, "\(pattern) for \(label)")
        }
    }

    @Test func scopesCoverTheKeyedRoutes() {
        let scopes = map("required_scope").filter { $0.0 != "default" && $0.0 != "volatile" && !$0.0.hasPrefix("~") }
        #expect(Set(scopes.map(\.0)) == [Route.read, .write, .reset].map(\.rawValue).reduce(into: Set()) { $0.insert($1) })
        // Named counters: GET read, POST write, PUT and DELETE admin, an unknown method read.
        let byMethod = Dictionary(uniqueKeysWithValues: map("counters_scope"))
        #expect(byMethod == ["POST": "write", "PUT": "admin", "DELETE": "admin", "default": "read"])
        // Reads go through the public-counter check, which falls back to the read scope.
        let refusals = Dictionary(uniqueKeysWithValues: map("refuse_counters"))
        #expect(refusals == ["GET": "$refuse_public_read", "HEAD": "$refuse_public_read", "POST": "$refuse_write", "PUT": "$refuse_admin",
                             "DELETE": "$refuse_admin", "default": "$refuse_read"])
        #expect(Dictionary(uniqueKeysWithValues: map("refuse_public_read")) == ["": "$refuse_read", "default": "$refuse_wrong_key"])
        // A keyless read of a public counter is let through (""), a wrong key never.
        #expect(Dictionary(uniqueKeysWithValues: map("refuse_wrong_key")) == ["none": "403", "default": ""])
    }

    /// The methods nginx lets through to /v1/counters are every method a named-counter resource
    /// takes (counter-fcgi answers the rest with 405 and the resource's Allow).
    @Test func namedCounterMethodsHaveAScope() {
        let methods = Set([CounterResource.collection, .counter(CounterName("a")!), .step(CounterName("a")!, .increment),
                           .badge(CounterName("a")!)].flatMap(\.methods))
        let refusals = Set(map("refuse_counters").map(\.0))
        #expect(methods.isSubset(of: refusals))
    }

    @Test func problemDetailsAreTheSameText() {
        let details = Dictionary(map("problem_detail").map { ($0.0, $0.1) }, uniquingKeysWith: { first, _ in first })
        #expect(details["404"] == APIError.unknownPathDetail)
        let swift413 = APIError.contentTooLarge(limit: Router().maxBodyBytes).response.bodyText
        #expect(details["413"].map { swift413.contains("\"detail\":\"\($0)\"") } == true, "\(details["413"] ?? "none") vs \(swift413)")
    }

    /// The exact-key check captures only what render.sh lets a key be: a capture that could hold
    /// the `|` separator lets a header such as `x||x` pass for a key.
    @Test func exactKeyCaptureIsTheKeyAlphabet() {
        let render = NginxContractTests.read("nginx/render.sh")
        let keyClass = "[A-Za-z0-9._+/=-]{16,256}"
        #expect(render.contains("grep -Eq '^\(keyClass)$'"), "render.sh's key rule")
        let entries = map("api_key_valid").filter { $0.0 != "default" }
        #expect(entries.map(\.0) == ["~^(\(keyClass))\\|\\1$"], "\(entries)")
    }

    @Test func bodyLimitIsTheSame() {
        #expect(conf.contains("client_max_body_size \(Router().maxBodyBytes / 1024)k;"))
    }

    @Test func openAPIDescribesEveryRoute() {
        let spec = NginxContractTests.read("docs/openapi.yaml")
        let paths = spec.split(separator: "\n").filter { $0.hasPrefix("  /") && $0.hasSuffix(":") }
            .map { String($0.dropFirst(2).dropLast()) }
        #expect(Set(paths) == routes.union(CounterRoute.allCases.map(\.rawValue)))
    }
}
