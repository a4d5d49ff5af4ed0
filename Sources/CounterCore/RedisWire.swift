/// A command in Redis's wire format (RESP2): `*<words>\r\n`, then for each word `$<bytes>\r\n`,
/// the word's bytes and `\r\n`. Lengths count UTF-8 bytes, so any word is sent exactly as given
/// (binary safe: no quoting, no terminator relied upon). Pure, so it is tested without a server;
/// the connection owner encodes each fixed command once and hands hiredis the finished bytes.
public enum RedisWire {
    /// `words` as one RESP array of bulk strings: what Redis reads as a command.
    public static func encode(_ words: [String]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16 + words.reduce(0) { $0 + $1.utf8.count + 16 })
        header(&bytes, "*", words.count)
        for word in words {
            header(&bytes, "$", word.utf8.count)
            bytes.append(contentsOf: word.utf8)
            endLine(&bytes)
        }
        return bytes
    }

    static func header(_ bytes: inout [UInt8], _ kind: Unicode.Scalar, _ number: Int) {
        bytes.append(UInt8(ascii: kind))
        if number < 10 {
            // Most words and counts are one digit: no detour through the decimal writer.
            bytes.append(UInt8(ascii: "0") + UInt8(number))
        } else {
            JSONObject.appendDecimal(Int64(number), to: &bytes)
        }
        endLine(&bytes)
    }

    /// CR LF, appended byte by byte: an array literal here would be allocated on every call.
    static func endLine(_ bytes: inout [UInt8]) {
        bytes.append(0x0D)
        bytes.append(0x0A)
    }

    /// Writes one command's words straight into its wire bytes, for the commands built per request
    /// (a named counter's key is in them): no array of words, no `String` for a number.
    public struct Builder: Sendable {
        /// The command so far.
        public private(set) var bytes: [UInt8]

        /// A command of `words` words.
        public init(words: Int, capacity: Int = 96) {
            bytes = []
            bytes.reserveCapacity(capacity)
            RedisWire.header(&bytes, "*", words)
        }

        /// A word written by us (a command name).
        public mutating func add(_ word: StaticString) {
            RedisWire.header(&bytes, "$", word.utf8CodeUnitCount)
            bytes.append(contentsOf: UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount))
            RedisWire.endLine(&bytes)
        }

        /// A word, as its UTF-8 bytes.
        public mutating func add(_ word: String) {
            var word = word
            word.withUTF8 { utf8 in
                RedisWire.header(&bytes, "$", utf8.count)
                bytes.append(contentsOf: utf8)
            }
            RedisWire.endLine(&bytes)
        }

        /// A word made of `prefix`, `middle` and `suffix` (a key around a name: `{c:` name `}`).
        public mutating func add(_ prefix: StaticString, _ middle: String, _ suffix: StaticString) {
            var middle = middle
            middle.withUTF8 { utf8 in
                RedisWire.header(&bytes, "$", prefix.utf8CodeUnitCount + utf8.count + suffix.utf8CodeUnitCount)
                bytes.append(contentsOf: UnsafeBufferPointer(start: prefix.utf8Start, count: prefix.utf8CodeUnitCount))
                bytes.append(contentsOf: utf8)
                bytes.append(contentsOf: UnsafeBufferPointer(start: suffix.utf8Start, count: suffix.utf8CodeUnitCount))
            }
            RedisWire.endLine(&bytes)
        }

        /// An integer, in decimal.
        public mutating func add(_ value: Int64) {
            var magnitude = value.magnitude, length = value < 0 ? 2 : 1
            while magnitude >= 10 {
                magnitude /= 10
                length += 1
            }
            RedisWire.header(&bytes, "$", length)
            JSONObject.appendDecimal(value, to: &bytes)
            RedisWire.endLine(&bytes)
        }
    }
}
