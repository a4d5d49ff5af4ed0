/// Lets one log line through per interval and counts the ones it held back: for errors that
/// repeat on every request until an operator acts (a wrong Redis password, a missing ACL
/// permission), where one line every few seconds says it all and a line per request would bury
/// everything else. The metric still counts each occurrence; only the log is thinned.
public struct LogThrottle: Sendable, Equatable {
    /// The shortest time between two lines, in nanoseconds.
    public let intervalNS: UInt64
    private var lastLine: UInt64?
    private var held = 0

    /// A throttle that lets one line through per `intervalNS`.
    public init(intervalNS: UInt64) {
        self.intervalNS = intervalNS
    }

    /// Whether a line may be written at `now` (monotonic nanoseconds): nil if not (the
    /// occurrence is counted as held back), else how many were held back since the last line.
    public mutating func admit(now: UInt64) -> Int? {
        if let lastLine, now - lastLine < intervalNS {
            held += 1
            return nil
        }
        defer { held = 0; lastLine = now }
        return held
    }
}
