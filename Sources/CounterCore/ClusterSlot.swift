/// Which of Redis Cluster's 16,384 hash slots a key lives in: CRC16 (XMODEM: polynomial 0x1021,
/// initial value 0, no reflection) of the key's hash tag, modulo 16,384, as the cluster
/// specification defines it. The hash tag is the text between the first `{` and the first `}`
/// after it, when that text is not empty; otherwise the whole key. So a named counter's value
/// `{c:billing}` and its idempotency records `{c:billing}:idempotency:...` share a slot, and so
/// do the default counter `api_counter` and its records `{api_counter}:idempotency:...`.
public enum ClusterSlot {
    /// The number of slots.
    public static let count = 16384

    /// The slot of `key`.
    public static func of(_ key: String) -> Int {
        var key = key
        return key.withUTF8 { bytes in Int(crc16(hashTag(bytes)) & 0x3FFF) }
    }

    /// The slot of `{<tagPrefix><name>}` (a named counter's keys), without building that key: it
    /// runs for every named request in cluster mode. `tagPrefix` must hold no `}` and `name` no
    /// `{` or `}` (the name alphabet has neither), so the hash tag is exactly the two together.
    public static func of(tagPrefix: StaticString, _ name: String) -> Int {
        var crc = crc16(UnsafeBufferPointer(start: tagPrefix.utf8Start, count: tagPrefix.utf8CodeUnitCount))
        var name = name
        name.withUTF8 { crc = crc16($0, continuing: crc) }
        return Int(crc & 0x3FFF)
    }

    /// The part of `key` that is hashed (the specification's `{...}` rule).
    static func hashTag(_ key: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
        guard let open = key.firstIndex(of: UInt8(ascii: "{")) else { return key }
        let rest = UnsafeBufferPointer(rebasing: key[(open + 1)...])
        guard let close = rest.firstIndex(of: UInt8(ascii: "}")), close > 0 else { return key }
        return UnsafeBufferPointer(rebasing: rest[..<close])
    }

    /// CRC16/XMODEM of `bytes`, a byte at a time from a 256-entry table (512 bytes): it runs
    /// for every named request in cluster mode, where bit by bit cost about 400 instructions.
    /// `continuing`: the CRC of the bytes before these (CRC16 runs over a key in pieces).
    public static func crc16(_ bytes: UnsafeBufferPointer<UInt8>, continuing start: UInt16 = 0) -> UInt16 {
        var crc = start
        table.withUnsafeBufferPointer { table in
            for byte in bytes {
                crc = (crc << 8) ^ table[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ byte)]
            }
        }
        return crc
    }

    /// The CRC of each byte value alone (polynomial 0x1021), for ``crc16(_:continuing:)``.
    private static let table: [UInt16] = (0..<256).map { value in
        var crc = UInt16(value) << 8
        for _ in 0..<8 {
            crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1
        }
        return crc
    }
}

extension CounterName {
    /// The Redis Cluster slot of ``storageKey`` (and of the name's idempotency records, which
    /// share its hash tag), computed without building the key.
    public var slot: Int { ClusterSlot.of(tagPrefix: "c:", text) }
}

/// A cluster node's redirection of a command (`-MOVED 3999 10.0.0.5:6381`, `-ASK 3999 ...`).
/// MOVED: the slot lives on that node now; update the map and send the command there. ASK: the
/// slot is being migrated and this key is already on that node; send this one command there after
/// `ASKING`, and keep the map. Either way the node that answered did not run the command.
public enum ClusterRedirect: Equatable, Sendable {
    case moved(slot: Int, to: HostPort)
    case ask(slot: Int, to: HostPort)

    /// The redirect in an error reply's text; nil for any other error. `from` is the node that
    /// answered: a redirect with an empty host (`MOVED 3999 :6381`, a node that does not know
    /// its own address) means that node's host.
    public init?(error message: String, from: HostPort) {
        let parts = message.split(separator: " ")
        guard parts.count == 3, parts[0] == "MOVED" || parts[0] == "ASK",
              let slot = Int(parts[1]), (0..<ClusterSlot.count).contains(slot),
              let colon = parts[2].lastIndex(of: ":"), let port = Int(parts[2][parts[2].index(after: colon)...]),
              (1...65535).contains(port) else { return nil }
        var host = String(parts[2][..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.isEmpty || host == "?" { host = from.host }
        let target = HostPort(host: host, port: port)
        self = parts[0] == "MOVED" ? .moved(slot: slot, to: target) : .ask(slot: slot, to: target)
    }
}
