import Testing
@testable import CounterCore

@Suite("Error mapping and problem bodies")
struct APIErrorTests {
    @Test func problemBodyIsByteExact() {
        let response = APIError.counter(.unavailable(reason: "secret internals")).response
        #expect(response.status.code == 503)
        #expect(response.contentType == .problemJSON)
        #expect(response.header("Retry-After") == "1")
        #expect(response.bodyText == #"{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"Redis unavailable","error":"Redis unavailable"}"#)
        #expect(!response.bodyText.contains("secret"), "internal reasons never reach the client")
    }

    @Test(arguments: [
        (APIError.notFound, 404, "Not Found"),
        (APIError.methodNotAllowed(path: "/write", allowed: ["POST"]), 405, "Method Not Allowed"),
        (APIError.badRequest(detail: "Invalid Content-Length"), 400, "Bad Request"),
        (APIError.contentTooLarge(limit: 1024), 413, "Content Too Large"),
        (APIError.counter(.corruptValue), 500, "Internal Server Error"),
        (APIError.counter(.overflow), 409, "Conflict"),
        (APIError.counter(.unexpected(message: "ERR x")), 500, "Internal Server Error"),
        (APIError.counter(.misconfigured(reason: "NOPERM x")), 500, "Internal Server Error"),
    ])
    func everyErrorHasStatusTitleAndErrorMember(_ error: APIError, _ code: Int, _ title: String) {
        let response = error.response
        #expect(response.status.code == code)
        #expect(response.contentType == .problemJSON)
        let body = response.bodyText
        #expect(body.hasPrefix(#"{"type":"about:blank","title":"\#(title)","status":\#(code),"detail":""#))
        #expect(body.contains(#","error":""#))
        #expect(!body.contains("ERR x"))
    }

    @Test func methodNotAllowedListsAllow() {
        let response = APIError.methodNotAllowed(path: "/read", allowed: ["GET", "HEAD"]).response
        #expect(response.header("Allow") == "GET, HEAD")
        #expect(response.bodyText.contains("Use GET for /read"))
    }
}

@Suite("Response serialisation")
struct ResponseTests {
    @Test func cgiHeadersAndBody() {
        let response = Response(status: .methodNotAllowed, contentType: .problemJSON, headers: [("Allow", "POST")], body: Array("{}".utf8))
        var buffer: [UInt8] = Array("leftover".utf8)
        response.serialize(into: &buffer)
        #expect(String(decoding: buffer, as: UTF8.self)
            == "Status: 405 Method Not Allowed\r\nContent-Type: application/problem+json\r\nContent-Length: 2\r\nCache-Control: no-store\r\nAllow: POST\r\n\r\n{}")
    }

    @Test func headOmitsBodyButKeepsLength() {
        let response = Response(status: .ok, contentType: .json, body: Array("{\"a\":1}".utf8))
        var buffer: [UInt8] = []
        response.serialize(into: &buffer, includeBody: false)
        let text = String(decoding: buffer, as: UTF8.self)
        #expect(text.hasSuffix("Content-Length: 7\r\nCache-Control: no-store\r\n\r\n"))
    }

    @Test func aConfigurationErrorInvitesNoRetry() {
        let response = APIError.counter(.misconfigured(reason: "NOPERM this user has no permissions")).response
        #expect(response.header("Retry-After") == nil)
        #expect(!response.bodyText.contains("NOPERM"), "Redis's text stays in the log")
        #expect(response.bodyText.contains("configuration error"))
    }

    @Test func unknownPathDetailListsEveryRoute() {
        #expect(APIError.unknownPathDetail == "Unknown path; the endpoints are /health, /livez, /read, /write, /reset and /v1/counters")
    }
}
