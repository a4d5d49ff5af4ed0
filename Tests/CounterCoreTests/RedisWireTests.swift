import Testing
@testable import CounterCore

@Suite("Redis wire format")
struct RedisWireTests {
    private func text(_ words: [String]) -> String {
        String(decoding: RedisWire.encode(words), as: UTF8.self)
    }

    @Test func encodesEachWordWithItsLength() {
        #expect(text(["INCR", "counter"]) == "*2\r\n$4\r\nINCR\r\n$7\r\ncounter\r\n")
        #expect(text(["PING"]) == "*1\r\n$4\r\nPING\r\n")
        #expect(text(["SET", "k", "0"]) == "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n0\r\n")
    }

    @Test func countsBytesNotCharacters() {
        // "é" is two bytes, "€" three: Redis reads exactly the byte count it is told.
        #expect(text(["GET", "é€"]) == "*2\r\n$3\r\nGET\r\n$5\r\né€\r\n")
    }

    @Test func sendsSpacesNewlinesAndEmptyWordsAsTheyAre() {
        #expect(text(["SET", "a b\r\nc", ""]) == "*3\r\n$3\r\nSET\r\n$6\r\na b\r\nc\r\n$0\r\n\r\n")
    }

    @Test func countsTwoDigitLengths() {
        let key = String(repeating: "k", count: 12)
        let words = ["AUTH", "user", String(repeating: "p", count: 100), key]
        #expect(text(words) == "*4\r\n$4\r\nAUTH\r\n$4\r\nuser\r\n$100\r\n\(words[2])\r\n$12\r\n\(key)\r\n")
    }

    /// A command built in place is exactly what ``RedisWire/encode(_:)`` writes for the same words.
    @Test(arguments: [Int64(1), 0, -1, 9, 10, 99, 100, Int64.max, Int64.min, -10])
    func keyCommandIsEncode(_ number: Int64) {
        let name = CounterName("billing:acme.x")!
        // One buffer for all, as a worker reuses one: each command replaces the last.
        var buffer: [UInt8] = Array(repeating: 0x41, count: 300)
        RedisWire.keyCommand("INCRBY", "{c:", name.text, "}", argument: number, into: &buffer)
        #expect(buffer == RedisWire.encode(["INCRBY", name.storageKey, String(number)]))
        let long = CounterName(String(repeating: "n", count: 128))!
        RedisWire.keyCommand("GET", "{c:", long.text, "}", into: &buffer)
        #expect(buffer == RedisWire.encode(["GET", long.storageKey]))
        RedisWire.keyCommand("DEL", "", "", "", into: &buffer)
        #expect(buffer == RedisWire.encode(["DEL", ""]))
    }
}
