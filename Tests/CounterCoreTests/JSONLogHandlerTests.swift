import Foundation
import Logging
import Testing
@testable import CounterCore

@Suite("Structured logs")
struct JSONLogHandlerTests {
    /// Logs through a pipe and returns the lines written.
    func capture(level: Logger.Level, _ body: (Logger) -> Void) throws -> [[String: Any]] {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        var logger = Logger(label: "test") { JSONLogHandler(label: $0, level: level, fileDescriptor: fds[1]) }
        logger[metadataKey: "worker.id"] = "3"
        body(logger)
        close(fds[1])
        let data = FileHandle(fileDescriptor: fds[0], closeOnDealloc: true).readDataToEndOfFile()
        return try String(decoding: data, as: UTF8.self).split(separator: "\n").map {
            try #require(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    @Test func oneJSONObjectPerLineWithMetadata() throws {
        let lines = try capture(level: .info) { logger in
            logger.info("redis connected", metadata: ["redis": "127.0.0.1:6379", "odd \"key\"": "line\nbreak"])
            logger.debug("hidden at info")
        }
        #expect(lines.count == 1)
        let line = try #require(lines.first)
        #expect(line["message"] as? String == "redis connected")
        #expect(line["level"] as? String == "info")
        #expect(line["worker.id"] as? String == "3")
        #expect(line["odd \"key\""] as? String == "line\nbreak")
        let time = try #require(line["time"] as? String)
        #expect(time.count == 24 && time.hasSuffix("Z"))
    }

    @Test func debugLinesAppearAtDebug() throws {
        let lines = try capture(level: .debug) { $0.debug("request", metadata: ["request.id": "abc"]) }
        #expect(lines.first?["request.id"] as? String == "abc")
    }
}
