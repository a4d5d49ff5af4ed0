import ArgumentParser
import Testing
@testable import CounterCore

@Suite("Configuration")
struct ConfigTests {
    @Test func defaults() throws {
        let config = try Config(environment: [:])
        #expect(config.redis == .tcp(host: "localhost", port: 6379))
        #expect(config.redisDB == 0)
        #expect(config.redisPassword == nil)
        #expect(config.redisUsername == nil)
        #expect(config.counterKey == "api_counter")
        #expect(config.listen == .unix(path: "/tmp/counter-fcgi.sock"))
        #expect(config.threads == Config.defaultThreads)
        #expect(config.redisConnectTimeoutMS == 500)
        #expect(config.redisTimeoutMS == 1000)
        #expect(config.debug == false)
    }

    @Test func originalFlaskServiceVariables() throws {
        let config = try Config(environment: [
            "REDIS_HOST": "redis.internal", "REDIS_PORT": "6380", "REDIS_DB": "3",
            "REDIS_PASSWORD": "s3cret", "DEBUG": "true",
        ])
        #expect(config.redis == .tcp(host: "redis.internal", port: 6380))
        #expect(config.redisDB == 3)
        #expect(config.redisPassword == "s3cret")
        #expect(config.debug)
    }

    @Test func flagsWinOverEnvironment() throws {
        let options = try Options.parse(["--redis-port", "7000", "--threads", "4", "--listen", "tcp:127.0.0.1:9000", "--no-debug"])
        let config = try Config(options: options, environment: ["REDIS_PORT": "6380", "FCGI_THREADS": "8", "DEBUG": "1"])
        #expect(config.redis == .tcp(host: "localhost", port: 7000))
        #expect(config.threads == 4)
        #expect(config.listen == .tcp(host: "127.0.0.1", port: 9000))
        #expect(config.debug == false)
    }

    @Test func runtimeDirectoryForDefaultSocket() throws {
        #expect(try Config(environment: ["XDG_RUNTIME_DIR": "/run/user/1000"]).listen == .unix(path: "/run/user/1000/counter-fcgi.sock"))
        #expect(try Config(environment: ["RUNTIME_DIRECTORY": "/run/counter-fcgi", "XDG_RUNTIME_DIR": "/x"]).listen
            == .unix(path: "/run/counter-fcgi/counter-fcgi.sock"))
    }

    @Test func unixRedisAndACLUser() throws {
        let config = try Config(environment: ["REDIS_HOST": "/run/redis.sock", "REDIS_USERNAME": "counter", "REDIS_PASSWORD": "pw"])
        #expect(config.redis == .unix(path: "/run/redis.sock"))
        #expect(config.redisUsername == "counter")
    }

    @Test func emptyVariablesCountAsUnset() throws {
        let config = try Config(environment: ["REDIS_PORT": "", "REDIS_PASSWORD": "", "FCGI_THREADS": ""])
        #expect(config.redis == .tcp(host: "localhost", port: 6379))
        #expect(config.redisPassword == nil)
    }

    @Test(arguments: [
        "unix:/run/x.sock", "tcp:127.0.0.1:9000", "tcp:localhost:1", "tcp:[::1]:9000",
    ])
    func validListenAddresses(_ text: String) throws {
        let config = try Config(environment: ["FCGI_LISTEN": text])
        #expect(config.listen.description == text)
    }

    struct Invalid: Sendable, CustomTestStringConvertible {
        let environment: [String: String]
        let flags: [String]
        let setting: String
        var testDescription: String { "\(setting) \(environment) \(flags)" }
        init(_ environment: [String: String], flags: [String] = [], _ setting: String) {
            self.environment = environment
            self.flags = flags
            self.setting = setting
        }
    }

    @Test(arguments: [
        Invalid(["REDIS_PORT": "abc"], "REDIS_PORT"),
        Invalid(["REDIS_PORT": "0"], "REDIS_PORT"),
        Invalid(["REDIS_PORT": "65536"], "REDIS_PORT"),
        Invalid(["REDIS_PORT": "-1"], "REDIS_PORT"),
        Invalid(["REDIS_PORT": " 80"], "REDIS_PORT"),
        Invalid(["REDIS_DB": "x"], "REDIS_DB"),
        Invalid(["REDIS_DB": "-2"], "REDIS_DB"),
        Invalid(["REDIS_USERNAME": "counter"], "REDIS_USERNAME"),
        Invalid(["REDIS_CONNECT_TIMEOUT_MS": "0"], "REDIS_CONNECT_TIMEOUT_MS"),
        Invalid(["REDIS_TIMEOUT_MS": "1.5"], "REDIS_TIMEOUT_MS"),
        Invalid(["REDIS_TIMEOUT_MS": "60001"], "REDIS_TIMEOUT_MS"),
        Invalid(["FCGI_THREADS": "0"], "FCGI_THREADS"),
        Invalid(["FCGI_THREADS": "many"], "FCGI_THREADS"),
        Invalid(["FCGI_THREADS": "1025"], "FCGI_THREADS"),
        Invalid(["FCGI_BACKLOG": "0"], "FCGI_BACKLOG"),
        Invalid(["SHUTDOWN_TIMEOUT_MS": "soon"], "SHUTDOWN_TIMEOUT_MS"),
        Invalid(["SHUTDOWN_TIMEOUT_MS": "0"], "SHUTDOWN_TIMEOUT_MS"),
        Invalid(["FCGI_IO_TIMEOUT_MS": "0"], "FCGI_IO_TIMEOUT_MS"),
        Invalid(["FCGI_IO_TIMEOUT_MS": "600001"], "FCGI_IO_TIMEOUT_MS"),
        Invalid(["SHUTDOWN_TIMEOUT_MS": "99"], "SHUTDOWN_TIMEOUT_MS"),
        Invalid(["FCGI_LISTEN": "/tmp/x.sock"], "FCGI_LISTEN"),
        Invalid(["FCGI_LISTEN": "unix:"], "FCGI_LISTEN"),
        Invalid(["FCGI_LISTEN": "unix:/" + String(repeating: "a", count: 120)], "FCGI_LISTEN"),
        Invalid(["FCGI_LISTEN": "tcp:127.0.0.1"], "FCGI_LISTEN"),
        Invalid(["FCGI_LISTEN": "tcp::9000"], "FCGI_LISTEN"),
        Invalid(["FCGI_LISTEN": "tcp:127.0.0.1:99999"], "FCGI_LISTEN"),
        Invalid(["COUNTER_KEY": String(repeating: "k", count: 513)], "COUNTER_KEY"),
        Invalid(["DEBUG": "maybe"], "DEBUG"),
        Invalid([:], flags: ["--redis-port", "x"], "--redis-port"),
        Invalid(["REDIS_PORT": "6379"], flags: ["--redis-port", "0"], "--redis-port"),
        Invalid([:], flags: ["--listen", "http://x"], "--listen"),
        Invalid([:], flags: ["--counter-key", ""], "--counter-key"),
        Invalid([:], flags: ["--redis-host", ""], "--redis-host"),
        Invalid(["EDGE_LOG_ADDRESS": "9146"], "EDGE_LOG_ADDRESS"),
        Invalid(["EDGE_LOG_ADDRESS": "0.0.0.0:9146"], "EDGE_LOG_ADDRESS"),
        Invalid(["EDGE_LOG_ADDRESS": "10.0.0.1:9146"], "EDGE_LOG_ADDRESS"),
        Invalid(["EDGE_LOG_ADDRESS": "localhost:9146"], "EDGE_LOG_ADDRESS"),
        Invalid(["EDGE_LOG_ADDRESS": "127.0.0.256:9146"], "EDGE_LOG_ADDRESS"),
        Invalid(["EDGE_LOG_ADDRESS": "127.0.0.1:0"], "EDGE_LOG_ADDRESS"),
        Invalid(["EDGE_LOG_ADDRESS": "[::2]:9146"], "EDGE_LOG_ADDRESS"),
        Invalid([:], flags: ["--edge-log-address", "127.0.0.1"], "--edge-log-address"),
    ])
    func invalidValuesNameTheSetting(_ entry: Invalid) throws {
        let options = try Options.parse(entry.flags)
        #expect {
            try Config(options: options, environment: entry.environment)
        } throws: { error in
            guard let error = error as? ConfigError else { return false }
            return error.setting == entry.setting && error.description.hasPrefix("invalid \(entry.setting)")
        }
    }

    @Test(arguments: ["127.0.0.1:9146", "127.1.2.3:1", "[::1]:65535"])
    func edgeLogAddressesAreLoopbackOnly(_ text: String) throws {
        let config = try Config(environment: ["EDGE_LOG_ADDRESS": text])
        #expect(config.edgeLogAddress?.description == text)
        #expect(config.logSummary["edge_log_address"] == text)
        #expect(try Config(environment: [:]).edgeLogAddress == nil)
    }

    @Test func passwordFromFileForContainerSecrets() throws {
        let files = ["/run/secrets/redis_password": "from-file\n", "/empty": "\n"]
        let config = try Config(environment: ["REDIS_PASSWORD_FILE": "/run/secrets/redis_password"], readFile: { files[$0] })
        #expect(config.redisPassword == "from-file")
        let direct = try Config(environment: ["REDIS_PASSWORD": "direct", "REDIS_PASSWORD_FILE": "/x"], readFile: { files[$0] })
        #expect(direct.redisPassword == "direct")
        #expect(throws: ConfigError.self) { try Config(environment: ["REDIS_PASSWORD_FILE": "/missing"], readFile: { files[$0] }) }
        #expect(throws: ConfigError.self) { try Config(environment: ["REDIS_PASSWORD_FILE": "/empty"], readFile: { files[$0] }) }
    }

    @Test func passwordNeverInLogSummary() throws {
        let config = try Config(environment: ["REDIS_PASSWORD": "hunter2"])
        #expect(!config.logSummary.values.contains { $0.contains("hunter2") })
        #expect(config.logSummary["redis.password"] == "set")
    }

    @Test func clusterModeAndItsExclusions() throws {
        let config = try Config(environment: ["REDIS_CLUSTER_NODES": "10.0.0.1:7000, 10.0.0.2:7001,[::1]:7002"])
        #expect(config.clusterNodes == [HostPort(host: "10.0.0.1", port: 7000), HostPort(host: "10.0.0.2", port: 7001),
                                        HostPort(host: "::1", port: 7002)])
        #expect(config.logSummary["redis"] == "cluster" && config.logSummary["redis.cluster_nodes"] == "10.0.0.1:7000,10.0.0.2:7001,[::1]:7002")
        #expect(try Config(environment: [:]).clusterNodes == nil)
        #expect(try Config(environment: ["REDIS_CLUSTER_NODES": ""]).clusterNodes == nil, "empty is unset")
        let refusals: [([String: String], String)] = [
            (["REDIS_CLUSTER_NODES": "a:1", "REDIS_SENTINELS": "s:26379"], "and REDIS_SENTINELS select different modes"),
            (["REDIS_CLUSTER_NODES": "a:1", "REDIS_HOST": "redis"], "and REDIS_HOST select different modes"),
            (["REDIS_CLUSTER_NODES": "a:1", "REDIS_DB": "2"], "a cluster has database 0 only"),
            (["REDIS_CLUSTER_NODES": "a:1,b"], "'b': needs host:port"),
            (["REDIS_CLUSTER_NODES": "a:0"], "port must be an integer"),
        ]
        for (environment, reason) in refusals {
            #expect(throws: ConfigError.self, "\(environment)") { try Config(environment: environment) }
            do {
                _ = try Config(environment: environment)
            } catch {
                #expect("\(error)".contains(reason), "\(error)")
            }
        }
    }
}
