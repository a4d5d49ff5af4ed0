import Testing
@testable import CounterCore

@Suite("FastCGI probe framing")
struct FastCGIProbeTests {
    /// Splits bytes into (type, request id, content) records, checking the header of each.
    func records(_ bytes: [UInt8]) -> [(UInt8, UInt16, [UInt8])] {
        var out: [(UInt8, UInt16, [UInt8])] = []
        var index = 0
        while index + 8 <= bytes.count {
            #expect(bytes[index] == 1, "version 1")
            let length = Int(bytes[index + 4]) << 8 | Int(bytes[index + 5])
            let padding = Int(bytes[index + 6])
            out.append((bytes[index + 1], UInt16(bytes[index + 2]) << 8 | UInt16(bytes[index + 3]),
                        Array(bytes[(index + 8)..<(index + 8 + length)])))
            index += 8 + length + padding
        }
        #expect(index == bytes.count, "no trailing bytes")
        return out
    }

    func params(_ content: [UInt8]) -> [String: String] {
        var result: [String: String] = [:]
        var index = 0
        func length() -> Int {
            if content[index] < 128 { index += 1; return Int(content[index - 1]) }
            let value = Int(content[index] & 0x7F) << 24 | Int(content[index + 1]) << 16 | Int(content[index + 2]) << 8 | Int(content[index + 3])
            index += 4
            return value
        }
        while index < content.count {
            let nameLength = length(), valueLength = length()
            let name = String(decoding: content[index..<(index + nameLength)], as: UTF8.self)
            index += nameLength
            result[name] = String(decoding: content[index..<(index + valueLength)], as: UTF8.self)
            index += valueLength
        }
        return result
    }

    @Test func requestIsBeginParamsAndEmptyStreams() {
        let sent = records(FastCGIProbe.request(path: "/livez"))
        #expect(sent.map(\.0) == [1, 4, 4, 5], "BEGIN_REQUEST, PARAMS, empty PARAMS, empty STDIN")
        #expect(sent.allSatisfy { $0.1 == 1 })
        #expect(sent[0].2 == [0, 1, 0, 0, 0, 0, 0, 0], "responder role, no keep-conn")
        let env = params(sent[1].2)
        #expect(env["REQUEST_METHOD"] == "GET" && env["DOCUMENT_URI"] == "/livez" && env.count == 2)
        #expect(sent[2].2.isEmpty && sent[3].2.isEmpty)
    }

    @Test func longValuesUseFourByteLengths() {
        let path = "/" + String(repeating: "p", count: 300)
        #expect(params(records(FastCGIProbe.request(path: path))[1].2)["DOCUMENT_URI"] == path)
    }

    func record(_ type: UInt8, _ content: [UInt8], id: UInt16 = 1, padding: UInt8 = 0) -> [UInt8] {
        [1, type, UInt8(id >> 8), UInt8(id & 0xFF), UInt8(content.count >> 8), UInt8(content.count & 0xFF), padding, 0]
            + content + [UInt8](repeating: 0, count: Int(padding))
    }

    let complete: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0]

    @Test func answerIsReadAcrossAnySplit() throws {
        let wire = record(6, Array("Status: 200 OK\r\nContent-Type: application/json\r\n\r\n{\"status\":".utf8), padding: 3)
            + record(7, Array("a warning".utf8)) + record(6, Array("\"alive\"}".utf8)) + record(6, []) + record(3, complete)
        for split in [1, 2, 7, 8, 9, 50, wire.count] {
            var reader = FastCGIResponseReader()
            var index = 0
            while index < wire.count {
                #expect(reader.answer == nil)
                try reader.feed(wire[index..<min(wire.count, index + split)])
                index += split
            }
            #expect(reader.answer == FastCGIResponseReader.Answer(status: 200, body: Array(#"{"status":"alive"}"#.utf8)))
        }
    }

    @Test(arguments: [("Status: 404 Not Found\r\n\r\n", 404), ("Content-Type: text/plain\r\n\r\n", 200), ("status:503\r\n\r\n", 503)])
    func statusComesFromTheCGIHeader(_ head: String, _ status: Int) throws {
        var reader = FastCGIResponseReader()
        try reader.feed(record(6, Array(head.utf8)) + record(3, complete))
        #expect(reader.answer?.status == status)
    }

    @Test func failuresAreNamed() {
        var reader = FastCGIResponseReader()
        #expect(throws: FastCGIResponseReader.Failure.malformed("FastCGI version 72")) { try reader.feed(Array("HTTP/1.1 200 OK\r\n".utf8)) }
        reader = FastCGIResponseReader()
        #expect(throws: FastCGIResponseReader.Failure.malformed("record for request 2")) { try reader.feed(record(6, [65], id: 2)) }
        reader = FastCGIResponseReader()
        #expect(throws: FastCGIResponseReader.Failure.refused(protocolStatus: 1)) { try reader.feed(record(3, [0, 0, 0, 0, 1, 0, 0, 0])) }
        reader = FastCGIResponseReader()
        #expect(throws: FastCGIResponseReader.Failure.badHeaders) { try reader.feed(record(6, Array("no blank line".utf8)) + record(3, complete)) }
        reader = FastCGIResponseReader()
        #expect(throws: FastCGIResponseReader.Failure.badHeaders) { try reader.feed(record(6, Array("Status: abc\r\n\r\n".utf8)) + record(3, complete)) }
    }
}
