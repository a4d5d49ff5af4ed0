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

    /// `verb key [argument]` into `buffer` (emptied first, its capacity kept: a worker reuses one),
    /// where the key is `keyPrefix`, `middle`, `keySuffix` (a named counter's `{c:` name `}`): the
    /// commands built per request. Sized first, then written in place: no array of words, no
    /// `String` for a number, no growth, and with a reused buffer no allocation.
    public static func keyCommand(_ verb: StaticString, _ keyPrefix: StaticString, _ middle: String, _ keySuffix: StaticString,
                                  argument: Int64? = nil, into buffer: inout [UInt8]) {
        var middle = middle
        middle.withUTF8 { name in
            let keyLength = keyPrefix.utf8CodeUnitCount + name.count + keySuffix.utf8CodeUnitCount
            var digits = 0
            if let argument {
                var magnitude = argument.magnitude
                digits = argument < 0 ? 2 : 1
                while magnitude >= 10 {
                    magnitude /= 10
                    digits += 1
                }
            }
            let words = argument == nil ? 2 : 3
            let total = 4 + word(verb.utf8CodeUnitCount) + word(keyLength) + (argument == nil ? 0 : word(digits))
            buffer.removeAll(keepingCapacity: true)
            buffer.append(contentsOf: repeatElement(0, count: total))
            buffer.withUnsafeMutableBufferPointer { bytes in
                var out = Writer(buffer: bytes)
                out.header("*", words)
                out.header("$", verb.utf8CodeUnitCount)
                out.put(verb)
                out.endLine()
                out.header("$", keyLength)
                out.put(keyPrefix)
                out.put(name)
                out.put(keySuffix)
                out.endLine()
                if let argument {
                    out.header("$", digits)
                    out.decimal(argument, digits: digits)
                    out.endLine()
                }
                assert(out.position == total)
            }
        }
    }

    /// The bytes a bulk string of `length` bytes takes: `$`, the length, CR LF, the bytes, CR LF.
    private static func word(_ length: Int) -> Int { 1 + decimalLength(length) + 2 + length + 2 }

    private static func decimalLength(_ value: Int) -> Int {
        var length = 1, rest = value
        while rest >= 10 {
            rest /= 10
            length += 1
        }
        return length
    }

    /// Writes into a buffer sized beforehand (``keyCommand(_:_:_:_:argument:into:)``).
    private struct Writer {
        let buffer: UnsafeMutableBufferPointer<UInt8>
        var position = 0

        mutating func put(_ literal: StaticString) {
            put(UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
        }

        mutating func put(_ bytes: UnsafeBufferPointer<UInt8>) {
            guard let source = bytes.baseAddress, !bytes.isEmpty else { return }
            (buffer.baseAddress! + position).update(from: source, count: bytes.count)
            position += bytes.count
        }

        mutating func endLine() {
            buffer[position] = 0x0D
            buffer[position + 1] = 0x0A
            position += 2
        }

        mutating func header(_ kind: Unicode.Scalar, _ number: Int) {
            buffer[position] = UInt8(ascii: kind)
            position += 1
            decimal(Int64(number), digits: RedisWire.decimalLength(number))
            endLine()
        }

        /// `value` in decimal, `digits` characters (its sign included).
        mutating func decimal(_ value: Int64, digits: Int) {
            var magnitude = value.magnitude
            var index = position + digits - 1
            repeat {
                buffer[index] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
                index -= 1
            } while magnitude > 0
            if value < 0 { buffer[position] = UInt8(ascii: "-") }
            position += digits
        }
    }
}
