import Testing
@testable import CounterCore

@Suite("JSON encoding")
struct JSONObjectTests {
    @Test(arguments: [
        (Int64(0), "0"), (Int64(7), "7"), (Int64(-7), "-7"), (Int64(1_000_000), "1000000"),
        (Int64.max, "9223372036854775807"), (Int64.min, "-9223372036854775808"),
    ])
    func integers(_ value: Int64, _ text: String) {
        var object = JSONObject()
        object.add("v", value)
        #expect(String(decoding: object.finish(), as: UTF8.self) == #"{"v":\#(text)}"#)
    }

    @Test(arguments: [
        (Timestamp(seconds: 1_764_417_600, microseconds: 0), "1764417600.000000"),
        (Timestamp(seconds: 1_764_417_600, microseconds: 5), "1764417600.000005"),
        (Timestamp(seconds: 1_764_417_600, microseconds: 999_999), "1764417600.999999"),
        (Timestamp(seconds: 0, microseconds: 120_000), "0.120000"),
    ])
    func timestamps(_ value: Timestamp, _ text: String) {
        var object = JSONObject()
        object.add("t", value)
        #expect(String(decoding: object.finish(), as: UTF8.self) == #"{"t":\#(text)}"#)
    }

    @Test func stringsAreEscaped() {
        var object = JSONObject()
        object.add("s", "a\"b\\c\nd\u{01}é")
        #expect(String(decoding: object.finish(), as: UTF8.self) == #"{"s":"a\"b\\c\nd\u0001é"}"#)
    }

    @Test(arguments: [("plain", #""plain""#), ("", #""""#), ("\u{1F}\t\r", #""\u001f\t\r""#), ("é ü", #""é ü""#)])
    func stringsNeedingNoEscapeAndTheRest(_ value: String, _ json: String) {
        var object = JSONObject()
        object.add("s", value)
        #expect(String(decoding: object.finish(), as: UTF8.self) == #"{"s":"# + json + "}")
    }

    @Test func nowIsCurrent() {
        let now = Timestamp.now()
        #expect(now.seconds > 1_700_000_000)
        #expect((0..<1_000_000).contains(now.microseconds))
    }
}
