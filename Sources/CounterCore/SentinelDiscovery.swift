/// How counter-fcgi finds the primary when Redis runs with Sentinel (`REDIS_SENTINELS`).
public struct SentinelSettings: Sendable, Equatable {
    /// The Sentinels, asked in turn.
    public var sentinels: [HostPort]
    /// The monitored primary's name (`REDIS_SENTINEL_NAME`).
    public var primaryName: String
    /// Sentinel's own ACL user and password, when Sentinel requires them.
    public var username: String?
    /// Sentinel's password, when it requires one.
    public var password: String?

    /// Settings from their parts.
    public init(sentinels: [HostPort], primaryName: String, username: String? = nil, password: String? = nil) {
        self.sentinels = sentinels
        self.primaryName = primaryName
        self.username = username
        self.password = password
    }
}

/// Asks the Sentinels in turn where the primary is: the one that answered last is asked first
/// next time, an unreachable or unknowing one is skipped. The asking itself (a connection with the
/// connect timeout, `SENTINEL get-master-addr-by-name`) is the caller's, handed in as `ask`, so this
/// logic is tested without a server.
public struct SentinelDiscovery: Sendable {
    /// The Sentinels and the primary's name.
    public let settings: SentinelSettings
    private var preferred = 0

    /// What a discovery found.
    public enum Outcome: Equatable, Sendable {
        /// The primary's address, and the Sentinel that said so.
        case primary(HostPort, from: HostPort)
        /// No Sentinel gave an address; one reason per Sentinel, for the log line.
        case failed(reasons: [String])
    }

    /// A discovery that asks the first Sentinel first.
    public init(settings: SentinelSettings) {
        self.settings = settings
    }

    /// Asks each Sentinel, starting with the last one that answered, until one names the primary
    /// or `budgetNS` has passed (by `clock`, monotonic nanoseconds): Sentinels that accept and
    /// never answer would otherwise cost each the connect and command timeouts, and a discovery
    /// over several of them outlast the web server's wait for the response. `ask` gets a Sentinel
    /// and the time left (the caller bounds its timeouts by it), and returns that Sentinel's
    /// reply, or throws when it cannot be reached or refuses.
    public mutating func discover<Failure: Error>(budgetNS: UInt64, clock: () -> UInt64,
                                                  ask: (HostPort, _ remainingNS: UInt64) throws(Failure) -> RedisReply) -> Outcome {
        var reasons: [String] = []
        let count = settings.sentinels.count
        let deadline = clock() + budgetNS
        for offset in 0..<count {
            let index = (preferred + offset) % count
            let sentinel = settings.sentinels[index]
            let now = clock()
            guard now < deadline else {
                reasons.append("\(sentinel): not asked, the discovery took its \(budgetNS / 1_000_000) ms")
                continue
            }
            do {
                let reply = try ask(sentinel, deadline - now)
                if let primary = SentinelDiscovery.primaryAddress(from: reply) {
                    preferred = index
                    return .primary(primary, from: sentinel)
                }
                if case .error(let message) = reply {
                    reasons.append("\(sentinel): \(message)")
                } else {
                    reasons.append("\(sentinel): does not know \(settings.primaryName)")
                }
            } catch {
                reasons.append("\(sentinel): \(error)")
            }
        }
        return .failed(reasons: reasons)
    }

    /// `SENTINEL get-master-addr-by-name`'s answer: `[host, port]`, or null for an unknown name.
    public static func primaryAddress(from reply: RedisReply) -> HostPort? {
        guard case .array(let items) = reply, items.count == 2, let host = items[0].text, !host.isEmpty,
              let portText = items[1].text, let port = Int(portText), (1...65535).contains(port) else { return nil }
        return HostPort(host: host, port: port)
    }

    /// `ROLE`'s first element: `master`, `slave` or `sentinel`.
    public static func role(from reply: RedisReply) -> String? {
        guard case .array(let items) = reply, let first = items.first else { return nil }
        return first.text
    }
}
