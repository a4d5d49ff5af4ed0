import Foundation
import Testing
@testable import CounterCore

/// Badges: the abbreviation, colours, entity tags, options, the SVG, and the badge route over the
/// memory store (counting, caching, revalidation and each error).
@Suite("Badges")
struct BadgeTests {
    @Test(arguments: [
        (0, "0"), (999, "999"), (-999, "-999"), (1000, "1k"), (1049, "1k"), (1050, "1.1k"), (12_345, "12.3k"),
        (99_949, "99.9k"), (99_950, "100k"), (123_456, "123k"), (999_499, "999k"), (999_500, "1M"), (999_950, "1M"),
        (1_234_567, "1.2M"), (-1_234_567, "-1.2M"), (2_000_000_000, "2G"), (Int64.max, "9.2E"), (Int64.min, "-9.2E"),
    ] as [(Int64, String)])
    func abbreviation(_ value: Int64, _ text: String) {
        #expect(AbbreviatedNumber.text(value) == text)
    }

    @Test func coloursByNameAndHex() {
        #expect(BadgeColor("brightgreen")?.hex == "#44cc11")
        #expect(BadgeColor("Red")?.hex == "#e05d44")
        #expect(BadgeColor("4c1")?.hex == "#44cc11")
        #expect(BadgeColor("#007EC6")?.hex == "#007ec6")
        for bad in ["", "#", "12", "1234", "ggg", "#12345g", "chartreuse", "url(#x)", "4c1;"] {
            #expect(BadgeColor(bad) == nil, "\(bad)")
        }
        #expect(BadgeColor("yellow")!.isLight && BadgeColor("white")!.isLight)
        #expect(!BadgeColor("blue")!.isLight && !BadgeColor("grey")!.isLight)
    }

    @Test func entityTagsMatchAsRFC9110Says() {
        let tag = EntityTag(of: Array("<svg/>".utf8))
        #expect(tag == EntityTag(of: Array("<svg/>".utf8)) && tag != EntityTag(of: Array("<svg />".utf8)))
        #expect(tag.header.count == 18 && tag.header.first == "\"")
        for field in [tag.header, "W/\(tag.header)", " \"a\" , \(tag.header) ", "*", " * "] {
            #expect(tag.matches(ifNoneMatch: field), "\(field)")
        }
        for field in ["", "\"a\"", String(tag.header.dropFirst()), "W/", "\(tag.header)x"] {
            #expect(!tag.matches(ifNoneMatch: field), "\(field)")
        }
    }

    @Test func theSVGEscapesItsTexts() {
        let options = BadgeOptions(label: "<a & \"b\">", style: .flat)
        let svg = Badge(label: options.label, value: "42", options: options).svg()
        let text = String(decoding: svg, as: UTF8.self)
        #expect(text.contains("&lt;a &amp; &quot;b&quot;&gt;") && !text.contains("<a &"))
        // Well-formedness is checked by an XML parser in test_badges.py (FoundationXML is not
        // linked here); this checks what the escaping must have done.
        #expect(text.hasPrefix("<svg xmlns=\"http://www.w3.org/2000/svg\"") && text.hasSuffix("</svg>"))
        #expect(!text.contains("<script") && !text.contains("href") && !text.contains("<style"))
    }

    @Test func widthsGrowWithTheText() {
        #expect(BadgeText("").width == 0)
        #expect(BadgeText("iii").width < BadgeText("MMM").width)
        #expect(abs(BadgeText("0").width - 6.996) < 0.01)  // a digit: 0.636 em at 11 px
        #expect(BadgeText("界").width > BadgeText("a").width)
    }

    let router = Router(clock: { Timestamp(seconds: 1_764_417_600, microseconds: 0) })

    func badge(_ store: MemoryCounterStore, _ name: String, query: String = "", method: String = "GET", publicPrefix: String? = nil,
               hitPrefix: String? = nil, ifNoneMatch: String? = nil, namespace: CounterPrefix = .none) -> Response {
        let head = RequestHead(method: method, path: "/v1/counters/\(name)/badge.svg",
                               named: NamedParts(query: query, namespace: namespace, publicPrefix: publicPrefix.flatMap(CounterPrefix.init),
                                                 hitPrefix: hitPrefix.flatMap(CounterPrefix.init), ifNoneMatch: ifNoneMatch))
        return router.respond(to: head, store: store)
    }

    @Test func theRouteAnswersWithAnSVGAndItsTag() {
        let store = MemoryCounterStore()
        store.named[CounterName("stars")!] = "1500"
        let first = badge(store, "stars", query: "abbreviate=1&label=GitHub%20stars")
        #expect(first.status == .ok && first.contentType == .svg && first.cacheControl.value == "private, max-age=30")
        #expect(first.bodyText.contains(">GitHub stars</text>") && first.bodyText.contains(">1.5k</text>"))
        let tag = first.header("ETag")!
        let again = badge(store, "stars", query: "abbreviate=1&label=GitHub%20stars", ifNoneMatch: tag)
        #expect(again.status == .notModified && again.body.isEmpty && again.header("ETag") == tag)
        var bytes: [UInt8] = []
        again.serialize(into: &bytes)
        let head = String(decoding: bytes, as: UTF8.self)
        #expect(head.hasPrefix("Status: 304 Not Modified\r\nCache-Control: private, max-age=30\r\n") && !head.contains("Content-Length"))
        #expect(badge(store, "stars", publicPrefix: "st").cacheControl.value == "public, max-age=\(Router.badgeMaxAge)")
        #expect(store.writes == 0)
    }

    @Test func countingNeedsAHitPrefixAndAGET() {
        let store = MemoryCounterStore()
        #expect(badge(store, "blog", query: "count=1").status == .forbidden)
        #expect(badge(store, "blog", query: "count=1", hitPrefix: "hits:").status == .forbidden)
        #expect(store.named.isEmpty)
        let counted = badge(store, "hits:blog", query: "count=true", hitPrefix: "hits:")
        #expect(counted.status == .ok && counted.cacheControl == .noStore && counted.header("ETag") == nil)
        #expect(badge(store, "hits:blog", query: "count=1", method: "HEAD", hitPrefix: "hits:").status == .ok)
        #expect(store.named[CounterName("hits:blog")!] == "1")
    }

    @Test func errorsAreProblems() {
        let store = MemoryCounterStore()
        store.named[CounterName("x")!] = "1"
        #expect(badge(store, "missing").status == .notFound)
        #expect(badge(store, "x", namespace: CounterPrefix("a:")!).status == .forbidden)
        #expect(badge(store, "x", method: "PUT").status == .methodNotAllowed)
        #expect(badge(store, "x", method: "PUT").header("Allow") == "GET, HEAD")
        for query in ["style=3d", "color=nope", "labelColor=", "abbreviate=2", "count=yes", "label=" + String(repeating: "x", count: 65)] {
            let response = badge(store, "x", query: query)
            #expect(response.status == .badRequest && response.contentType == .problemJSON, "\(query)")
        }
        #expect(badge(store, "x", query: "label=" + String(repeating: "é", count: 64)).status == .ok)
    }
}
