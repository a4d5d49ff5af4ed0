/// The opaque cursor of a listing page over Redis: SCAN's own cursor, and how many matching keys
/// of the batch that cursor returns the page before already handed out (a page may end inside a
/// batch, since SCAN's COUNT is only a hint). Written `<scan>` or `<scan>.<skip>`.
public struct ListCursor: Sendable, Equatable {
    /// SCAN's cursor (decimal).
    public var scan: String
    /// Matching keys of that batch to skip.
    public var skip: Int

    /// A cursor from its parts.
    public init(scan: String, skip: Int) {
        self.scan = scan
        self.skip = skip
    }

    /// The cursor a client sent back: empty for the first page; nil for anything no page hands out.
    public init?(_ text: String) {
        if text.isEmpty {
            self.init(scan: "0", skip: 0)
            return
        }
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let isDecimal: (Substring) -> Bool = { !$0.isEmpty && $0.count <= 20 && $0.utf8.allSatisfy { (48...57).contains($0) } }
        guard isDecimal(parts[0]), UInt64(parts[0]) != nil else { return nil }
        var skip = 0
        if parts.count == 2 {
            guard isDecimal(parts[1]), let value = Int(parts[1]), value <= 9_999_999 else { return nil }
            skip = value
        }
        self.init(scan: String(parts[0]), skip: skip)
    }

    /// The text a page hands out.
    public var text: String { skip == 0 ? scan : "\(scan).\(skip)" }
}
