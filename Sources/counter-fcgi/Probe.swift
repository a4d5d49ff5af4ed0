import ArgumentParser
import CounterCore

/// `counter-fcgi probe`: the containers' health check. Asks the running responder for `/livez`
/// over its FastCGI socket (the one `FCGI_LISTEN` names, by the same rules as the server) and
/// exits 0 only when it answers 200 in time; otherwise prints one line and exits 1.
struct Probe: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask the running responder for /livez over its socket; exit 0 if it answers 200 in time.",
        discussion: "For container health checks: unlike a test that the socket exists, it fails for a hung process."
    )

    @Option(name: .customLong("address"), help: "unix:/path or tcp:host:port of the responder (default: FCGI_LISTEN, by the server's rules).")
    var address: String?

    @Option(name: .customLong("path"), help: "The path to ask for.")
    var path: String = "/livez"

    @Option(name: .customLong("timeout-ms"), help: "Deadline for connecting, asking and reading the answer, in ms.")
    var timeoutMS: Int = 2000

    func validate() throws {
        guard (1...60_000).contains(timeoutMS) else { throw ValidationError("--timeout-ms must be from 1 to 60000") }
        guard path.hasPrefix("/"), path.utf8.count <= 1024 else { throw ValidationError("--path must start with /") }
    }

    func run() throws {
        let target: ListenAddress
        do {
            target = try Config.listenAddress(flag: address, flagName: "--address", environment: CounterFCGI.environment())
        } catch {
            CounterFCGI.fail("probe: \(error)", code: 2)
        }
        let answer: FastCGIResponseReader.Answer
        do {
            answer = try ProbeClient.ask(target, path: path, timeoutMS: timeoutMS)
        } catch {
            CounterFCGI.fail("probe: \(error)", code: 1)
        }
        guard answer.status == 200 else {
            CounterFCGI.fail("probe: \(path) answered \(answer.status)", code: 1)
        }
    }
}
