/// The opaque cursor of a listing page over Redis: which node is being scanned (a Redis Cluster's
/// primaries are scanned one after the other; always 0 otherwise), SCAN's own cursor, and how many
/// matching keys of the batch that cursor returns the page before already handed out (a page may
/// end inside a batch, since SCAN's COUNT is only a hint). Written `[<node>-]<scan>[.<skip>]`.
public struct ListCursor: Sendable, Equatable {
    /// The index of the node being scanned, in the cluster's primaries sorted by address.
    public var node: Int
    /// SCAN's cursor (decimal).
    public var scan: String
    /// Matching keys of that batch to skip.
    public var skip: Int

    /// A cursor from its parts.
    public init(node: Int = 0, scan: String, skip: Int) {
        self.node = node
        self.scan = scan
        self.skip = skip
    }

    /// The cursor a client sent back: empty for the first page; nil for anything no page hands out.
    public init?(_ text: String) {
        if text.isEmpty {
            self.init(scan: "0", skip: 0)
            return
        }
        let isDecimal: (Substring) -> Bool = { !$0.isEmpty && $0.count <= 20 && $0.utf8.allSatisfy { (48...57).contains($0) } }
        var rest = Substring(text)
        var node = 0
        if let dash = rest.firstIndex(of: "-") {
            let prefix = rest[..<dash]
            // Written only for nodes after the first, without leading zeros: one text per cursor.
            guard isDecimal(prefix), prefix.count <= 4, prefix.first != "0", let value = Int(prefix) else { return nil }
            node = value
            rest = rest[rest.index(after: dash)...]
        }
        let parts = rest.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard isDecimal(parts[0]), UInt64(parts[0]) != nil else { return nil }
        var skip = 0
        if parts.count == 2 {
            guard isDecimal(parts[1]), let value = Int(parts[1]), value <= 9_999_999 else { return nil }
            skip = value
        }
        self.init(node: node, scan: String(parts[0]), skip: skip)
    }

    /// The text a page hands out.
    public var text: String {
        let base = skip == 0 ? scan : "\(scan).\(skip)"
        return node == 0 ? base : "\(node)-\(base)"
    }
}
