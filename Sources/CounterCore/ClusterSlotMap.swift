/// Which primary serves each hash slot: read from `CLUSTER SLOTS` (at start, and again after a
/// `MOVED`), updated slot by slot by `MOVED` in between. Pure: tests build it from replies.
public struct ClusterSlotMap: Sendable, Equatable {
    /// The primaries the map names, in the order first met.
    public private(set) var nodes: [HostPort]
    /// Per slot, the index of its primary in ``nodes``; ``unassigned`` when no node serves it.
    private var owner: [UInt16]

    /// The marker of a slot no node serves (a cluster being formed or resharded by hand).
    static let unassigned = UInt16.max

    /// An empty map: every slot unassigned.
    public init() {
        nodes = []
        owner = Array(repeating: ClusterSlotMap.unassigned, count: ClusterSlot.count)
    }

    /// The map in a `CLUSTER SLOTS` reply: an array of `[start, end, [host, port, id, ...],
    /// replica...]`. `from` is the node that answered: an empty host (a node that does not know
    /// its own address) is its host. Nil for a reply that is not one.
    public init?(clusterSlots reply: RedisReply, from: HostPort) {
        guard case .array(let ranges) = reply else { return nil }
        self.init()
        for range in ranges {
            guard case .array(let fields) = range, fields.count >= 3,
                  case .integer(let start) = fields[0], case .integer(let end) = fields[1],
                  0 <= start, start <= end, end < Int64(ClusterSlot.count),
                  case .array(let primary) = fields[2], primary.count >= 2,
                  let host = primary[0].text, case .integer(let port) = primary[1], (1...65535).contains(port) else { return nil }
            let node = HostPort(host: host.isEmpty || host == "?" ? from.host : host, port: Int(port))
            let index = self.index(of: node)
            for slot in Int(start)...Int(end) { owner[slot] = index }
        }
    }

    /// The index in ``nodes`` of the primary that serves `slot`; nil when none does. Stable
    /// while the map lives (``move(slot:to:)`` only appends), so a client may keep per-index state.
    public func nodeIndex(for slot: Int) -> Int? {
        let index = owner[slot]
        return index == ClusterSlotMap.unassigned ? nil : Int(index)
    }

    /// The primary that serves `slot`; nil when none does.
    public func node(for slot: Int) -> HostPort? {
        let index = owner[slot]
        return index == ClusterSlotMap.unassigned ? nil : nodes[Int(index)]
    }

    /// How many slots are served (16,384 in a healthy cluster).
    public var assignedSlots: Int { owner.lazy.filter { $0 != ClusterSlotMap.unassigned }.count }

    /// After `MOVED slot node`: that slot is served there now.
    public mutating func move(slot: Int, to node: HostPort) {
        owner[slot] = index(of: node)
    }

    /// The primaries that serve at least one slot, in the order of ``nodes`` (a listing walks them).
    public var servingNodes: [HostPort] {
        let used = Set(owner.filter { $0 != ClusterSlotMap.unassigned })
        return nodes.indices.filter { used.contains(UInt16($0)) }.map { nodes[$0] }
    }

    private mutating func index(of node: HostPort) -> UInt16 {
        if let known = nodes.firstIndex(of: node) { return UInt16(known) }
        nodes.append(node)
        return UInt16(nodes.count - 1)
    }
}
