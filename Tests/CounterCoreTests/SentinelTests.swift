import Testing
@testable import CounterCore

@Suite("Sentinel discovery, WAIT and reconnect policy")
struct SentinelTests {
    struct Unreachable: Error, CustomStringConvertible { var description: String { "connection refused" } }

    let a = HostPort(host: "10.0.0.1", port: 26379), b = HostPort(host: "10.0.0.2", port: 26379), c = HostPort(host: "10.0.0.3", port: 26379)
    func primaryReply(_ host: String, _ port: Int) -> RedisReply { .array([.string(Array(host.utf8)), .string(Array(String(port).utf8))]) }

    @Test func firstSentinelThatKnowsWinsAndIsAskedFirstNextTime() {
        var discovery = SentinelDiscovery(settings: SentinelSettings(sentinels: [a, b, c], primaryName: "counter"))
        var asked: [HostPort] = []
        let outcome = discovery.discover(budgetNS: 1_000, clock: { 0 }) { (sentinel: HostPort, _) throws(Unreachable) -> RedisReply in
            asked.append(sentinel)
            if sentinel == a { throw Unreachable() }
            return primaryReply("10.0.1.5", 6379)
        }
        #expect(outcome == .primary(HostPort(host: "10.0.1.5", port: 6379), from: b))
        #expect(asked == [a, b], "an unreachable Sentinel is skipped, the rest not asked")
        asked = []
        _ = discovery.discover(budgetNS: 1_000, clock: { 0 }) { (sentinel: HostPort, _) throws(Unreachable) -> RedisReply in
            asked.append(sentinel)
            return primaryReply("10.0.1.6", 6379)
        }
        #expect(asked == [b], "the one that answered last is asked first")
    }

    @Test func everyFailureIsNamed() {
        var discovery = SentinelDiscovery(settings: SentinelSettings(sentinels: [a, b, c], primaryName: "counter"))
        let outcome = discovery.discover(budgetNS: 1_000, clock: { 0 }) { (sentinel: HostPort, _) throws(Unreachable) -> RedisReply in
            if sentinel == a { throw Unreachable() }
            if sentinel == b { return .null }
            return .error("NOAUTH HELLO must be called with the client already authenticated")
        }
        #expect(outcome == .failed(reasons: ["10.0.0.1:26379: connection refused", "10.0.0.2:26379: does not know counter",
                                             "10.0.0.3:26379: NOAUTH HELLO must be called with the client already authenticated"]))
    }

    /// Sentinels that accept and never answer each take their timeouts: the discovery stops at
    /// its budget, hands each Sentinel only what is left of it, and names the ones not asked.
    @Test func theWholeDiscoveryIsBoundedByItsBudget() {
        var discovery = SentinelDiscovery(settings: SentinelSettings(sentinels: [a, b, c], primaryName: "counter"))
        var now: UInt64 = 5_000
        var given: [UInt64] = []
        let outcome = discovery.discover(budgetNS: 1_500, clock: { now }) { (_: HostPort, remaining) throws(Unreachable) -> RedisReply in
            given.append(remaining)
            now += min(remaining, 1_000)  // a stalled Sentinel: its command timeout, cut to what is left
            throw Unreachable()
        }
        #expect(given == [1_500, 500], "the second Sentinel gets what the first left")
        guard case .failed(let reasons) = outcome else { Issue.record("\(outcome)"); return }
        #expect(reasons.count == 3)
        #expect(reasons[2] == "10.0.0.3:26379: not asked, the discovery took its 0 ms")
    }

    @Test(arguments: [
        (RedisReply.array([.string(Array("::1".utf8)), .string(Array("6380".utf8))]), HostPort(host: "::1", port: 6380) as HostPort?),
        (.null, nil), (.array([.string(Array("h".utf8))]), nil), (.array([.string(Array("h".utf8)), .string(Array("0".utf8))]), nil),
        (.array([.string([]), .string(Array("6379".utf8))]), nil), (.error("ERR"), nil),
    ])
    func primaryAddressParsing(_ reply: RedisReply, _ expected: HostPort?) {
        #expect(SentinelDiscovery.primaryAddress(from: reply) == expected)
    }

    @Test func roleParsing() {
        #expect(SentinelDiscovery.role(from: .array([.string(Array("master".utf8)), .integer(0), .array([])])) == "master")
        #expect(SentinelDiscovery.role(from: .array([.string(Array("slave".utf8))])) == "slave")
        #expect(SentinelDiscovery.role(from: .error("NOPERM")) == nil)
    }

    @Test func waitAcknowledgements() {
        #expect(ReplicaAcknowledgement(reply: .integer(2), required: 1) == .enough)
        #expect(ReplicaAcknowledgement(reply: .integer(1), required: 1) == .enough)
        #expect(ReplicaAcknowledgement(reply: .integer(0), required: 1) == .shortfall(acknowledged: 0, required: 1))
        #expect(ReplicaAcknowledgement(reply: .error("ERR"), required: 1) == nil)
    }

    @Test func reconnectPolicy() {
        let policy = ReconnectPolicy()
        #expect(policy.nextAttempt(failures: 1, now: 1_000, jitter: 1) == 1_000, "the first retry is immediate")
        #expect(policy.nextAttempt(failures: 2, now: 0, jitter: 0) == 12_500_000, "25 ms step, lower half")
        #expect(policy.nextAttempt(failures: 2, now: 0, jitter: 1) == 25_000_000)
        #expect(policy.nextAttempt(failures: 3, now: 0, jitter: 1) == 50_000_000, "doubles")
        #expect(policy.nextAttempt(failures: 60, now: 0, jitter: 1) == 500_000_000, "capped")
        #expect(policy.nextAttempt(failures: 60, now: 0, jitter: 0) == 250_000_000)
    }

    @Test func anotherWorkersRecoveryEndsTheBackoff() {
        let policy = ReconnectPolicy()
        // Failed at 100, backing off until 500.
        #expect(!policy.allowsAttempt(now: 200, nextAttempt: 500, lastFailure: 100, recoveredAt: 0), "no news: wait")
        #expect(!policy.allowsAttempt(now: 200, nextAttempt: 500, lastFailure: 100, recoveredAt: 90),
                "a recovery before this worker's failure is old news")
        #expect(policy.allowsAttempt(now: 200, nextAttempt: 500, lastFailure: 100, recoveredAt: 150),
                "Redis answered another worker since: try now")
        #expect(policy.allowsAttempt(now: 500, nextAttempt: 500, lastFailure: 100, recoveredAt: 0), "backoff over")
    }

    @Test(arguments: [
        ("LOADING Redis is loading the dataset in memory", RedisErrorReply.transient, RedisErrorReply.reconnect),
        ("NOREPLICAS Not enough good replicas to write.", .transient, .reconnect),
        ("MASTERDOWN Link with MASTER is down", .transient, .reconnect),
        ("READONLY You can't write against a read only replica.", .reconnect, .reconnect),
        ("OOM command not allowed", .transient, .transient),
    ])
    func failoverSignsReconnectWithSentinel(_ message: String, _ fixed: RedisErrorReply, _ sentinel: RedisErrorReply) {
        #expect(RedisErrorReply(message: message, authenticates: true) == fixed)
        #expect(RedisErrorReply(message: message, authenticates: true, followsFailover: true) == sentinel)
    }

    @Test func sentinelSettingsFromTheEnvironment() throws {
        let config = try Config(environment: ["REDIS_SENTINELS": "10.0.0.1:26379, [::1]:26380", "REDIS_SENTINEL_PASSWORD_FILE": "/s",
                                              "REDIS_WAIT_REPLICAS": "1"], readFile: { _ in "spw\n" })
        #expect(config.sentinel == SentinelSettings(sentinels: [a, HostPort(host: "::1", port: 26380)], primaryName: "counter",
                                                     username: nil, password: "spw"))
        #expect(config.waitReplicas == 1 && config.waitTimeoutMS == 300)
        #expect(try Config(environment: [:]).sentinel == nil)
    }

    @Test(arguments: [
        (["REDIS_SENTINELS": "10.0.0.1"], "REDIS_SENTINELS"),
        (["REDIS_SENTINELS": "10.0.0.1:26379,"], "REDIS_SENTINELS"),
        (["REDIS_SENTINELS": "a:1", "REDIS_SENTINEL_NAME": "my primary"], "REDIS_SENTINEL_NAME"),
        (["REDIS_SENTINELS": "a:1", "REDIS_SENTINEL_USERNAME": "u"], "REDIS_SENTINEL_USERNAME"),
        (["REDIS_WAIT_REPLICAS": "17"], "REDIS_WAIT_REPLICAS"),
        (["REDIS_WAIT_REPLICAS": "1", "REDIS_WAIT_TIMEOUT_MS": "1000"], "REDIS_WAIT_TIMEOUT_MS"),
    ])
    func invalidSentinelSettingsNameTheSetting(_ environment: [String: String], _ setting: String) {
        #expect { try Config(environment: environment) } throws: { error in
            (error as? ConfigError)?.setting == setting
        }
    }
}
