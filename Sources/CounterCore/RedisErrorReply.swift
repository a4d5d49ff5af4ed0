/// What an error reply from Redis means for the service, decided from its text alone.
///
/// Redis's error replies start with a code word (`LOADING`, `NOPERM`, `READONLY` ...) or, for
/// some command errors, with `ERR` and a fixed sentence. Deciding here, in one pure table-tested
/// function, keeps the Redis store down to acting on the answer: answer 503 and let the client
/// retry, drop the connection and reconnect with backoff, report a configuration error, or map
/// INCR's own failures to the API's.
public enum RedisErrorReply: Equatable, Sendable {
    /// INCR would pass 2^63-1; nothing changed.
    case overflow
    /// The counter holds something that is not a 64-bit integer (text, or another type).
    case corruptValue
    /// A passing server state (loading its data, a busy script, out of memory under
    /// `noeviction`, a cluster re-sharding): the same connection works again soon. 503 with
    /// Retry-After.
    case transient
    /// This connection cannot be used any more (it points at a replica after a failover, or it is
    /// not authenticated): drop it and reconnect with the usual backoff. 503 with Retry-After.
    case reconnect
    /// Retrying cannot help: the Redis user lacks a permission (ACL), or Redis wants a password
    /// the service was not given. An operator must fix the settings.
    case misconfigured
    /// Anything else: a bug, or a Redis we do not know. 500.
    case unexpected

    /// Classifies Redis's error text. `authenticates` says whether the service sends AUTH on
    /// connect: without a password, `NOAUTH` cannot be cured by reconnecting. `followsFailover`:
    /// the primary is found through Sentinel, so a node that is loading, cut off from its replicas
    /// (`NOREPLICAS`) or from its primary may no longer be the primary: reconnect, which asks
    /// Sentinel again.
    public init(message: String, authenticates: Bool, followsFailover: Bool = false) {
        // INCR's own errors, also when raised inside the write-once script (then prefixed by the
        // script's location, so these are matched anywhere in the text).
        if message.contains("increment or decrement would overflow") { self = .overflow; return }
        if message.contains("not an integer") || message.contains("WRONGTYPE") { self = .corruptValue; return }
        let code = message.prefix { $0 != " " }
        switch code {
        case "LOADING", "NOREPLICAS", "MASTERDOWN":
            self = followsFailover ? .reconnect : .transient
        case "BUSY", "OOM", "CLUSTERDOWN", "TRYAGAIN":
            self = .transient
        case "READONLY":
            self = .reconnect
        case "NOAUTH":
            self = authenticates ? .reconnect : .misconfigured
        case "NOPERM":
            self = .misconfigured
        default:
            self = .unexpected
        }
    }

    /// Classifies Redis's refusal of a new connection's handshake (`AUTH`, `SELECT`). A passing
    /// server state (loading its data, a failover under way) is ``transient``: the connection is
    /// tried again with the usual backoff. Anything else cannot be cured by trying again: a wrong
    /// password (`WRONGPASS`), a user without permission (`NOPERM`), `AUTH` to a server that has
    /// no password, `SELECT` of a database the server does not have: ``misconfigured``.
    public init(handshakeReply message: String) {
        switch RedisErrorReply(message: message, authenticates: false) {
        case .transient, .reconnect: self = .transient
        default: self = .misconfigured
        }
    }
}
