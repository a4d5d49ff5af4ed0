#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Wall-clock time as the original Flask service reports it: Unix seconds with a fraction (`1764417600.123456`).
///
/// Kept as two integers so encoding it never goes through floating point (no rounding surprises,
/// no `Double` description on the hot path).
public struct Timestamp: Sendable, Equatable {
    /// Whole seconds since the Unix epoch.
    public var seconds: Int64
    /// Microseconds within the second, 0 to 999,999.
    public var microseconds: Int32

    /// A timestamp from its parts; `microseconds` must be below one million.
    public init(seconds: Int64, microseconds: Int32) {
        precondition((0..<1_000_000).contains(microseconds), "microseconds out of range")
        self.seconds = seconds
        self.microseconds = microseconds
    }

    /// The current wall-clock time.
    public static func now() -> Timestamp {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Timestamp(seconds: Int64(spec.tv_sec), microseconds: Int32(spec.tv_nsec / 1000))
    }

    /// Seconds with six decimals, as in the JSON bodies: `1764417600.000123`.
    public var text: String {
        var object = JSONObject(capacity: 32)
        object.add("t", self)
        return String(decoding: object.finish().dropFirst(5).dropLast(), as: UTF8.self)
    }

    /// Parses ``text``'s form back (exactly six decimals), or nil.
    public init?(text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[1].count == 6, parts[1].utf8.allSatisfy({ (48...57).contains($0) }),
              let seconds = CounterValue.parse(Array(parts[0].utf8)), let micros = Int32(parts[1]) else { return nil }
        self.init(seconds: seconds, microseconds: micros)
    }
}
