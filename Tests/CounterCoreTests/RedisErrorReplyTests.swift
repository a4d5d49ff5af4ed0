import Testing
@testable import CounterCore

@Suite("Redis error replies")
struct RedisErrorReplyTests {
    @Test(arguments: [
        ("ERR increment or decrement would overflow", RedisErrorReply.overflow),
        ("ERR value is not an integer or out of range", .corruptValue),
        ("WRONGTYPE Operation against a key holding the wrong kind of value", .corruptValue),
        // Raised inside the write-once script: Redis 7 keeps the code, adds the script's location.
        ("ERR increment or decrement would overflow script: 1f2e, on @user_script:6.", .overflow),
        ("WRONGTYPE Operation against a key holding the wrong kind of value script: 1f2e, on @user_script:6.", .corruptValue),
        ("LOADING Redis is loading the dataset in memory", .transient),
        ("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSCRIPT.", .transient),
        ("OOM command not allowed when used memory > 'maxmemory'.", .transient),
        ("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.", .transient),
        ("CLUSTERDOWN The cluster is down", .transient),
        ("TRYAGAIN Multiple keys request during rehashing of slot", .transient),
        ("READONLY You can't write against a read only replica.", .reconnect),
        ("NOPERM User counter has no permissions to run the 'incr' command", .misconfigured),
        ("NOPERM this user has no permissions to access one of the keys used as arguments", .misconfigured),
        // Only AUTH answers WRONGPASS: a command never does (see the handshake table below).
        ("WRONGPASS invalid username-password pair or user is disabled.", .unexpected),
        ("ERR unknown command 'FOO'", .unexpected),
        ("NOSCRIPT No matching script. Please use EVAL.", .unexpected),
        ("", .unexpected),
        // A code word must be the whole first word.
        ("LOADINGX something", .unexpected),
    ])
    func classifies(_ message: String, _ expected: RedisErrorReply) {
        #expect(RedisErrorReply(message: message, authenticates: true) == expected)
    }

    @Test(arguments: [
        ("WRONGPASS invalid username-password pair or user is disabled.", RedisErrorReply.misconfigured),
        ("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?", .misconfigured),
        ("NOPERM User counter has no permissions to run the 'select' command", .misconfigured),
        ("ERR DB index is out of range", .misconfigured),
        ("NOAUTH Authentication required.", .misconfigured),
        ("LOADING Redis is loading the dataset in memory", .transient),
        ("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSCRIPT.", .transient),
        ("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.", .transient),
    ])
    func classifiesHandshakeRefusals(_ message: String, _ expected: RedisErrorReply) {
        #expect(RedisErrorReply(handshakeReply: message) == expected)
    }

    @Test func noAuthIsCuredByReconnectingOnlyWhenThereIsAPassword() {
        let message = "NOAUTH Authentication required."
        #expect(RedisErrorReply(message: message, authenticates: true) == .reconnect)
        #expect(RedisErrorReply(message: message, authenticates: false) == .misconfigured)
    }
}
