/// A setting that stops the process at start. Its `description` is the one line printed.
public struct ConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Why a value is wrong, without naming the setting (the caller knows which it was).
    public struct Reason: Error, Equatable, Sendable {
        public let text: String
        public init(_ text: String) { self.text = text }
    }

    /// The environment variable or flag the value came from, e.g. `REDIS_PORT` or `--redis-port`.
    public let setting: String
    /// The offending value, or `nil` for secrets (never echoed).
    public let value: String?
    public let reason: String

    public init(setting: String, value: String?, reason: String) {
        self.setting = setting
        self.value = value
        self.reason = reason
    }

    public var description: String {
        if let value { return "invalid \(setting)=\"\(value)\": \(reason)" }
        return "invalid \(setting): \(reason)"
    }
}
