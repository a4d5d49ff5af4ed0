import ArgumentParser
import CounterCore

/// `counter-fcgi keyslot NAME...`: the Redis key and the Redis Cluster hash slot of each named
/// counter (and, for `--key`, of raw keys), one `slot key` line each: which shard holds a hot
/// counter. Names come from the arguments, or one per line on standard input when there are none.
struct KeySlot: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keyslot",
        abstract: "Print the Redis key and Redis Cluster hash slot of counter names (or, with --key, of raw keys).",
        discussion: "Names come from the arguments, or one per line on standard input when there are none."
    )

    @Flag(name: .customLong("key"), help: "Take each argument as a raw Redis key, not a counter name.")
    var rawKeys = false

    @Argument(help: "Counter names (or keys with --key).")
    var names: [String] = []

    func run() throws {
        var inputs = names
        if inputs.isEmpty {
            while let line = readLine(strippingNewline: true) { inputs.append(line) }
        }
        var out = ""
        for input in inputs {
            let key: String
            if rawKeys {
                key = input
            } else {
                guard let name = CounterName(input) else {
                    CounterFCGI.fail("keyslot: '\(input)' is not a counter name: a name is \(CounterName.rule)", code: 2)
                }
                key = name.storageKey
            }
            out += "\(ClusterSlot.of(key)) \(key)\n"
        }
        print(out, terminator: "")
    }
}
