/// The FastCGI side of `counter-fcgi probe`: one request as the bytes a web server would send,
/// and a reader for the records that come back. Pure, so the framing is unit tested; the probe
/// command does the socket I/O.
///
/// Why a probe at all: a container health check that only tests that the socket exists passes
/// for a process that is hung. The probe asks for `/livez` the way nginx would, which only a
/// worker that accepts, reads, routes and writes can answer. (FastCGI 1.0, records of an 8-byte
/// header and content; see the FastCGI specification, section 3.)
public enum FastCGIProbe {
    /// The request id used (any non-zero id; one request per connection).
    static let requestID: UInt16 = 1

    /// BEGIN_REQUEST (responder, no keep-conn), the params, an empty PARAMS, an empty STDIN.
    public static func request(method: String = "GET", path: String) -> [UInt8] {
        var bytes: [UInt8] = []
        // role FCGI_RESPONDER (1), flags 0: the responder closes the connection after answering.
        append(record: 1, content: [0, 1, 0, 0, 0, 0, 0, 0], to: &bytes)
        var params: [UInt8] = []
        for (name, value) in [("REQUEST_METHOD", method), ("DOCUMENT_URI", path)] {
            appendLength(name.utf8.count, to: &params)
            appendLength(value.utf8.count, to: &params)
            params.append(contentsOf: name.utf8)
            params.append(contentsOf: value.utf8)
        }
        append(record: 4, content: params, to: &bytes)
        append(record: 4, content: [], to: &bytes)
        append(record: 5, content: [], to: &bytes)
        return bytes
    }

    /// Name-value pair lengths: one byte below 128, else four with the top bit set.
    private static func appendLength(_ length: Int, to bytes: inout [UInt8]) {
        if length < 128 {
            bytes.append(UInt8(length))
        } else {
            bytes.append(contentsOf: [UInt8(0x80 | (length >> 24) & 0x7F), UInt8((length >> 16) & 0xFF),
                                      UInt8((length >> 8) & 0xFF), UInt8(length & 0xFF)])
        }
    }

    /// Params stay far below a record's 65,535-byte limit, so one record each.
    private static func append(record type: UInt8, content: [UInt8], to bytes: inout [UInt8]) {
        bytes.append(contentsOf: [1, type, UInt8(requestID >> 8), UInt8(requestID & 0xFF),
                                  UInt8(content.count >> 8), UInt8(content.count & 0xFF), 0, 0])
        bytes.append(contentsOf: content)
    }
}

/// Collects a FastCGI response from the bytes read so far: STDOUT content until END_REQUEST.
public struct FastCGIResponseReader: Sendable {
    /// What came back: the HTTP status (CGI's `Status:` header, 200 when absent) and the body.
    public struct Answer: Sendable, Equatable {
        /// The HTTP status the responder gave (200 when it sent no Status header).
        public var status: Int
        /// The response body, as sent.
        public var body: [UInt8]
    }

    /// Why a response could not be read.
    public enum Failure: Error, Equatable, Sendable {
        /// Not FastCGI version 1 records, or a record for another request.
        case malformed(String)
        /// END_REQUEST came with a status other than "request complete".
        case refused(protocolStatus: UInt8)
        /// The CGI headers had no blank line, or a `Status:` that is not a number.
        case badHeaders
    }

    private var buffer: [UInt8] = []
    private var stdout: [UInt8] = []
    /// Set once END_REQUEST has been read.
    public private(set) var answer: Answer?

    /// A reader with nothing read yet.
    public init() {}

    /// Adds bytes read from the socket; throws as soon as they cannot be a valid response.
    public mutating func feed(_ bytes: some Collection<UInt8>) throws(Failure) {
        buffer.append(contentsOf: bytes)
        while answer == nil, buffer.count >= 8 {
            guard buffer[0] == 1 else { throw .malformed("FastCGI version \(buffer[0])") }
            let type = buffer[1]
            let id = UInt16(buffer[2]) << 8 | UInt16(buffer[3])
            let length = Int(buffer[4]) << 8 | Int(buffer[5])
            let total = 8 + length + Int(buffer[6])
            guard buffer.count >= total else { return }
            let content = Array(buffer[8..<(8 + length)])
            buffer.removeFirst(total)
            guard id == FastCGIProbe.requestID else { throw .malformed("record for request \(id)") }
            switch type {
            case 6:  // STDOUT
                stdout.append(contentsOf: content)
            case 7:  // STDERR: the responder's diagnostics; not part of the answer
                continue
            case 3:  // END_REQUEST: appStatus (4 bytes), protocolStatus (1 byte), reserved
                guard content.count >= 5 else { throw .malformed("short END_REQUEST") }
                guard content[4] == 0 else { throw .refused(protocolStatus: content[4]) }
                answer = try FastCGIResponseReader.parse(stdout)
            default:
                throw .malformed("record type \(type)")
            }
        }
    }

    /// Splits a CGI response into its `Status:` and body.
    static func parse(_ output: [UInt8]) throws(Failure) -> Answer {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = output.indices.first(where: { output[$0...].starts(with: separator) }) else { throw .badHeaders }
        var status = 200
        for line in output[..<end].split(separator: 10) {
            let text = String(decoding: line, as: UTF8.self).trimmingSuffix("\r")
            guard text.lowercased().hasPrefix("status:") else { continue }
            let code = text.dropFirst(7).drop { $0 == " " }.prefix { $0 != " " }
            guard let value = Int(code), (100...599).contains(value) else { throw .badHeaders }
            status = value
        }
        return Answer(status: status, body: Array(output[(end + 4)...]))
    }
}

private extension String {
    func trimmingSuffix(_ suffix: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) : self
    }
}
