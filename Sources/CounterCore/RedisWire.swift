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
            bytes.append(contentsOf: [0x0D, 0x0A])
        }
        return bytes
    }

    private static func header(_ bytes: inout [UInt8], _ kind: Unicode.Scalar, _ number: Int) {
        bytes.append(UInt8(ascii: kind))
        bytes.append(contentsOf: String(number).utf8)
        bytes.append(contentsOf: [0x0D, 0x0A])
    }
}
