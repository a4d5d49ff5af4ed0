import Testing
@testable import CounterCore

/// Redis Cluster's pure parts: the slot of a key, redirects, and the slot map read from
/// `CLUSTER SLOTS`. (test_cluster.py checks the slots against a real server's CLUSTER KEYSLOT.)
@Suite("Redis Cluster: slots, redirects, slot map")
struct ClusterTests {
    func crc(_ text: String) -> UInt16 {
        var text = text
        return text.withUTF8 { ClusterSlot.crc16($0) }
    }

    @Test func crc16IsXmodem() {
        // The cluster specification's test vector.
        #expect(crc("123456789") == 0x31C3)
        #expect(crc("") == 0)
    }

    @Test func slotsOfKnownKeys() {
        #expect(ClusterSlot.of("foo") == 12182)
        #expect(ClusterSlot.of("bar") == 5061)
        #expect(ClusterSlot.of("hello") == 866)
    }

    @Test func hashTagsAsTheSpecificationSays() {
        #expect(ClusterSlot.of("{user1000}.following") == ClusterSlot.of("{user1000}.followers"))
        #expect(ClusterSlot.of("{user1000}.following") == ClusterSlot.of("user1000"))
        #expect(ClusterSlot.of("foo{}{bar}") == Int(crc("foo{}{bar}") & 0x3FFF), "an empty tag: the whole key")
        #expect(ClusterSlot.of("foo{{bar}}zap") == ClusterSlot.of("{bar"), "the tag ends at the first }")
        #expect(ClusterSlot.of("foo{bar}{zap}") == ClusterSlot.of("bar"), "only the first tag counts")
        #expect(ClusterSlot.of("foo{bar") == Int(crc("foo{bar") & 0x3FFF), "no closing brace: the whole key")
        // A named counter and its records share a slot, and so do the default counter and its.
        let name = CounterName("billing:acme")!
        let record = name.idempotencyKey(for: IdempotencyKey(header: "k-1", client: "ci")!)
        #expect(ClusterSlot.of(name.storageKey) == ClusterSlot.of(record))
        #expect(ClusterSlot.of("api_counter") == ClusterSlot.of("{api_counter}:idempotency:ci:k-1"))
    }

    @Test func aNamesSlotWithoutItsKeyIsItsKeysSlot() {
        for text in ["a", "billing:acme", "x.y_z-0", String(repeating: "n", count: CounterName.maxLength)] {
            guard let name = CounterName(text) else { continue }
            #expect(name.slot == ClusterSlot.of(name.storageKey), "\(text)")
        }
        #expect(CounterName("billing")!.slot == ClusterSlot.of("c:billing"))
    }

    let here = HostPort(host: "10.0.0.9", port: 7000)

    @Test func redirectsAreParsed() {
        #expect(ClusterRedirect(error: "MOVED 3999 127.0.0.1:6381", from: here) == .moved(slot: 3999, to: HostPort(host: "127.0.0.1", port: 6381)))
        #expect(ClusterRedirect(error: "ASK 0 10.1.2.3:7002", from: here) == .ask(slot: 0, to: HostPort(host: "10.1.2.3", port: 7002)))
        #expect(ClusterRedirect(error: "MOVED 16383 [::1]:7001", from: here) == .moved(slot: 16383, to: HostPort(host: "::1", port: 7001)))
        #expect(ClusterRedirect(error: "MOVED 12 ::1:7001", from: here) == .moved(slot: 12, to: HostPort(host: "::1", port: 7001)))
        #expect(ClusterRedirect(error: "MOVED 5 :7003", from: here) == .moved(slot: 5, to: HostPort(host: "10.0.0.9", port: 7003)))
        for text in ["MOVED", "MOVED 3999", "MOVED 16384 a:1", "MOVED -1 a:1", "MOVED 1 a:0", "MOVED 1 a:65536", "MOVED x a:1",
                     "ASK 1 a", "TRYAGAIN Multiple keys request during rehashing of slot", "CLUSTERDOWN The cluster is down",
                     "ERR unknown command", "MOVED 1 a:1 extra"] {
            #expect(ClusterRedirect(error: text, from: here) == nil, "\(text)")
        }
    }

    func node(_ host: String, _ port: Int64, id: String = "x") -> RedisReply {
        .array([.string(Array(host.utf8)), .integer(port), .string(Array(id.utf8))])
    }

    @Test func theSlotMapFromClusterSlots() throws {
        let reply = RedisReply.array([
            .array([.integer(0), .integer(5460), node("127.0.0.1", 7000), node("127.0.0.1", 7003)]),
            .array([.integer(5461), .integer(10922), node("127.0.0.1", 7001)]),
            .array([.integer(10923), .integer(16383), node("", 7002)]),
        ])
        var map = try #require(ClusterSlotMap(clusterSlots: reply, from: here))
        #expect(map.assignedSlots == ClusterSlot.count)
        #expect(map.node(for: 0) == HostPort(host: "127.0.0.1", port: 7000))
        #expect(map.node(for: 5460) == HostPort(host: "127.0.0.1", port: 7000))
        #expect(map.node(for: 5461) == HostPort(host: "127.0.0.1", port: 7001))
        #expect(map.node(for: 16383) == HostPort(host: "10.0.0.9", port: 7002), "an empty host is the answering node's")
        #expect(map.servingNodes.count == 3)
        // MOVED updates one slot; a node the map did not know is added.
        map.move(slot: 100, to: HostPort(host: "127.0.0.1", port: 7009))
        #expect(map.node(for: 100) == HostPort(host: "127.0.0.1", port: 7009) && map.node(for: 101) == HostPort(host: "127.0.0.1", port: 7000))
        #expect(map.servingNodes.count == 4)
        // Indices into `nodes` stay put when a MOVED adds a node.
        #expect(map.nodeIndex(for: 0) == 0 && map.nodeIndex(for: 5461) == 1 && map.nodeIndex(for: 100) == 3)
        #expect(map.nodes[3] == HostPort(host: "127.0.0.1", port: 7009))
    }

    @Test func partialAndBrokenMaps() {
        let partial = ClusterSlotMap(clusterSlots: .array([.array([.integer(0), .integer(99), node("a", 1)])]), from: here)
        #expect(partial?.assignedSlots == 100 && partial?.node(for: 100) == nil && partial?.nodeIndex(for: 100) == nil)
        #expect(ClusterSlotMap(clusterSlots: .array([]), from: here)?.assignedSlots == 0)
        for broken: RedisReply in [.error("ERR This instance has cluster support disabled"), .null,
                                   .array([.array([.integer(5), .integer(4), node("a", 1)])]),
                                   .array([.array([.integer(0), .integer(16384), node("a", 1)])]),
                                   .array([.array([.integer(0), .integer(1)])]),
                                   .array([.array([.integer(0), .integer(1), .array([.string(Array("a".utf8)), .integer(0)])])])] {
            #expect(ClusterSlotMap(clusterSlots: broken, from: here) == nil, "\(broken)")
        }
    }
}
