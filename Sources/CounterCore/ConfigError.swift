/// A setting that stops the process at start. Its `description` is the one line printed.
public struct ConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Why a value is wrong, without naming the setting (the caller knows which it was).
    public struct Reason: Error, Equatable, Sendable {
        /// What is wrong, as a phrase that follows the setting's name.
        public let text: String
        /// A reason with its text.
        public init(_ text: String) { self.text = text }
    }

    /// The environment variable or flag the value came from, e.g. `REDIS_PORT` or `--redis-port`.
    public let setting: String
    /// The offending value, or `nil` for secrets (never echoed).
    public let value: String?
    /// What is wrong with the value.
    public let reason: String

    /// An invalid `value` of `setting` (a variable or a flag), and why.
    public init(setting: String, value: String?, reason: String) {
        self.setting = setting
        self.value = value
        self.reason = reason
    }

    /// The text written in logs and error lines.
    public var description: String {
        if let value { return "invalid \(setting)=\"\(value)\": \(reason)" }
        return "invalid \(setting): \(reason)"
    }
}
