import Logging
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A swift-log handler that writes one JSON object per line to stderr:
/// `{"time":"2026-11-29T13:37:00.123Z","level":"info","logger":"counter-fcgi","message":"…",…}`.
///
/// Metadata keys become top-level members (`request.id`, `worker.id`, `redis.error`...), so log
/// pipelines can filter on them without parsing messages. Each line goes out in one `write(2)`,
/// which keeps lines from different worker threads whole.
public struct JSONLogHandler: LogHandler {
    /// Lines below this level are not written.
    public var logLevel: Logger.Level
    /// Metadata added to every line of this logger.
    public var metadata: Logger.Metadata = [:]
    private let label: String
    private let fileDescriptor: Int32

    /// A handler for `label` writing to `fileDescriptor` (stderr by default).
    public init(label: String, level: Logger.Level = .info, fileDescriptor: Int32 = 2) {
        self.label = label
        self.logLevel = level
        self.fileDescriptor = fileDescriptor
    }

    /// One metadata value of this logger.
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Writes `event` as one JSON line, in one write(2), to the handler's file descriptor.
    public func log(event: LogEvent) {
        var line = JSONObject(capacity: 256)
        line.add("time", JSONLogHandler.isoTime())
        line.add("level", event.level.rawValue)
        line.add("logger", label)
        line.add("message", event.message.description)
        let merged = event.metadata.map { metadata.merging($0) { _, new in new } } ?? metadata
        for key in merged.keys.sorted() {
            line.addDynamic(key, JSONLogHandler.text(merged[key]!))
        }
        var bytes = line.finish()
        bytes.append(UInt8(ascii: "\n"))
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(fileDescriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written <= 0 { break }
                offset += written
            }
        }
    }

    private static func text(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let string): string
        case .stringConvertible(let convertible): convertible.description
        case .array(let values): "[" + values.map { text($0) }.joined(separator: ",") + "]"
        case .dictionary(let entries): entries.keys.sorted().map { "\($0)=\(text(entries[$0]!))" }.joined(separator: ",")
        }
    }

    /// UTC time with milliseconds, ISO 8601, without Foundation's formatters.
    static func isoTime() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        var seconds = spec.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(spec.tv_nsec / 1_000_000), 3))Z"
    }
}

extension JSONObject {
    /// A member whose key is not known at compile time (log metadata), escaped like any string.
    mutating func addDynamic(_ key: String, _ value: String) {
        appendRawKey(key)
        appendQuoted(value)
    }
}
