import ArgumentParser
import CounterCore
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// The entry point: parse settings once, set up JSON logging, serve until SIGTERM/SIGINT.
@main
struct CounterFCGI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "counter-fcgi",
        abstract: "A FastCGI counter responder over Redis, meant to sit behind nginx.",
        discussion: """
            Every option mirrors an environment variable (named in its help); a flag wins over \
            the variable, which wins over the default. An invalid value stops the process at \
            start with one line naming it. Routes: GET /health, GET /livez, GET /read, \
            POST /write, POST /reset. API keys and rate limits are nginx's job.
            """,
        subcommands: [Probe.self, KeySlot.self]
    )

    @OptionGroup var options: Options

    func run() throws {
        let config: Config
        do {
            config = try Config(options: options, environment: CounterFCGI.environment())
        } catch {
            CounterFCGI.fail("\(error)", code: 2)
        }
        LoggingSystem.bootstrap { JSONLogHandler(label: $0, level: config.debug ? .debug : .info) }
        let logger = Logger(label: "counter-fcgi")
        do {
            try FastCGIServer(config: config, logger: logger).run()
        } catch {
            logger.critical("cannot serve", metadata: ["error": "\(error)"])
            CounterFCGI.fail("\(error)", code: 1)
        }
    }

    static func fail(_ message: String, code: Int32) -> Never {
        let line = "counter-fcgi: \(message)\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
        Glibc.exit(code)
    }

    /// The process environment, read without Foundation.
    static func environment() -> [String: String] {
        var result: [String: String] = [:]
        var entry = environ
        while let pointer = entry.pointee {
            let text = String(cString: pointer)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            entry += 1
        }
        return result
    }
}
