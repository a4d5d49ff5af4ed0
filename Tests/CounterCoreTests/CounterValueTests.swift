import Testing
@testable import CounterCore

@Suite("Stored counter values")
struct CounterValueTests {
    @Test(arguments: [
        ("0", Int64(0)), ("7", 7), ("-7", -7), ("42", 42),
        ("9223372036854775807", Int64.max), ("-9223372036854775808", Int64.min),
    ])
    func valid(_ text: String, _ value: Int64) {
        #expect(CounterValue.parse(Array(text.utf8)) == value)
    }

    @Test(arguments: ["", "-", "abc", "1.5", " 1", "1 ", "+1", "01", "-0", "0x10", "9223372036854775808",
                      "-9223372036854775809", "123456789012345678901", "1e3"])
    func invalid(_ text: String) {
        #expect(CounterValue.parse(Array(text.utf8)) == nil)
    }
}
