/// What `WAIT numreplicas timeout` said about a write: enough replicas acknowledged it, or fewer
/// (the write may survive a failover or not: the client is told 503, never 200).
public enum ReplicaAcknowledgement: Equatable, Sendable {
    case enough
    case shortfall(acknowledged: Int, required: Int)

    /// WAIT's integer reply against `required`; nil when the reply is not an integer.
    public init?(reply: RedisReply, required: Int) {
        guard case .integer(let count) = reply else { return nil }
        self = count >= Int64(required) ? .enough : .shortfall(acknowledged: Int(count), required: required)
    }
}
