/// Builds one flat JSON object straight into bytes.
///
/// The API's bodies are small flat objects with constant keys, so a tiny writer beats a general
/// encoder: no reflection, no intermediate `String`s for numbers, one buffer per body. Keys are
/// `StaticString`s written by us and never need escaping; string values are escaped (RFC 8259).
struct JSONObject {
    private(set) var bytes: [UInt8]
    private var empty = true

    init(capacity: Int = 128) {
        bytes = []
        bytes.reserveCapacity(capacity)
        bytes.append(UInt8(ascii: "{"))
    }

    mutating func add(_ key: StaticString, _ value: String) {
        appendKey(key)
        appendQuoted(value)
    }

    /// A string value written by us, which needs no escaping.
    mutating func add(_ key: StaticString, literal value: StaticString) {
        appendKey(key)
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: UnsafeBufferPointer(start: value.utf8Start, count: value.utf8CodeUnitCount))
        bytes.append(UInt8(ascii: "\""))
    }

    /// A counter's name: its alphabet (``CounterName``) never needs escaping, so it is copied as it is.
    mutating func add(_ key: StaticString, _ name: CounterName) {
        appendKey(key)
        bytes.append(UInt8(ascii: "\""))
        var text = name.text
        text.withUTF8 { bytes.append(contentsOf: $0) }
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func add(_ key: StaticString, _ value: Int64) {
        appendKey(key)
        JSONObject.appendDecimal(value, to: &bytes)
    }

    mutating func add(_ key: StaticString, _ value: Int) {
        add(key, Int64(value))
    }

    /// Seconds with six decimals, e.g. `1764417600.000123`.
    mutating func add(_ key: StaticString, _ value: Timestamp) {
        appendKey(key)
        JSONObject.appendDecimal(value.seconds, to: &bytes)
        bytes.append(UInt8(ascii: "."))
        var fraction = Int(value.microseconds)
        var divisor = 100_000
        while divisor > 0 {
            bytes.append(UInt8(ascii: "0") + UInt8(fraction / divisor))
            fraction %= divisor
            divisor /= 10
        }
    }

    /// An array of objects, each already finished (``finish()``).
    mutating func add(_ key: StaticString, objects: [[UInt8]]) {
        appendKey(key)
        bytes.append(UInt8(ascii: "["))
        for (index, object) in objects.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            bytes.append(contentsOf: object)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    /// `null`.
    mutating func addNull(_ key: StaticString) {
        appendKey(key)
        bytes.append(contentsOf: "null".utf8)
    }

    /// Closes the object and returns its bytes.
    consuming func finish() -> [UInt8] {
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }

    private mutating func appendKey(_ key: StaticString) {
        if !empty { bytes.append(UInt8(ascii: ",")) }
        empty = false
        bytes.append(UInt8(ascii: "\""))
        key.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
    }

    /// A key that is not a compile-time constant (log metadata), so it is escaped.
    mutating func appendRawKey(_ key: String) {
        if !empty { bytes.append(UInt8(ascii: ",")) }
        empty = false
        appendQuoted(key)
        bytes.append(UInt8(ascii: ":"))
    }

    mutating func appendQuoted(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        JSONObject.appendEscaped(value, to: &bytes)
        bytes.append(UInt8(ascii: "\""))
    }

    /// Appends `value` in decimal without going through `String` (this runs on every response):
    /// the digits are made in a stack buffer, then appended in one go.
    static func appendDecimal(_ value: Int64, to bytes: inout [UInt8]) {
        // Work with the magnitude so Int64.min does not overflow on negation.
        var magnitude = value.magnitude
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: a sign and 20 digits fit
        withUnsafeMutableBytes(of: &digits) { buffer in
            var start = buffer.count
            repeat {
                start -= 1
                buffer[start] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            if value < 0 {
                start -= 1
                buffer[start] = UInt8(ascii: "-")
            }
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[start...]))
        }
    }

    private static let hexDigits: StaticString = "0123456789abcdef"

    /// Appends `string` escaped for a JSON string literal. Most values need no escaping: their
    /// bytes are appended in one go.
    static func appendEscaped(_ string: String, to bytes: inout [UInt8]) {
        var string = string
        string.withUTF8 { utf8 in
            guard utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) else {
                bytes.append(contentsOf: utf8)
                return
            }
            for byte in utf8 {
                switch byte {
                case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
                case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
                case UInt8(ascii: "\n"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
                case UInt8(ascii: "\r"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
                case UInt8(ascii: "\t"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
                case 0..<0x20:
                    bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                              hexDigits.utf8Start[Int(byte >> 4)], hexDigits.utf8Start[Int(byte & 0xF)]])
                default:
                    bytes.append(byte)
                }
            }
        }
    }
}
