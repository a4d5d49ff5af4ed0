import Testing
@testable import CounterCore

@Suite("Edge log lines")
struct EdgeLogLineTests {
    /// What nginx sends (`syslog:...,nohostname,tag=counter_edge` with `log_format counter_edge`).
    @Test(arguments: [
        ("<190>Nov 29 16:00:54 counter_edge: route=/read status=429", "/read", 429),
        ("<190>Nov  9 06:00:54 counter_edge: route=/write status=405", "/write", 405),
        ("<190>Nov 29 16:00:54 counter_edge: route=other status=444", "other", 444),
        ("<190>Nov 29 16:00:54 counter_edge: route=/health status=502\n", "/health", 502),
        ("route=/reset status=401", "/reset", 401),
    ])
    func parsesNginxDatagrams(_ text: String, route: String, status: Int) {
        #expect(EdgeLogLine(datagram: Array(text.utf8)) == EdgeLogLine(route: route, status: status))
    }

    /// Anything else is refused, so a stray or hostile datagram cannot invent labels.
    @Test(arguments: [
        "",
        "<190>Nov 29 16:00:54 counter_edge:",
        "<190>Nov 29 16:00:54 counter_edge: route=/admin status=429",
        "<190>Nov 29 16:00:54 counter_edge: route=/read status=42",
        "<190>Nov 29 16:00:54 counter_edge: route=/read status=4290",
        "<190>Nov 29 16:00:54 counter_edge: route=/read status=099",
        "<190>Nov 29 16:00:54 counter_edge: route=/read status=600",
        "<190>Nov 29 16:00:54 counter_edge: route=/read status=4x9",
        "<190>Nov 29 16:00:54 counter_edge: route=/read  status=429",
        "<190>Nov 29 16:00:54 counter_edge: route=/read status=429 extra=1",
        "<190>Nov 29 16:00:54 counter_edge: xroute=/read status=429",
        "<190>Nov 29 16:00:54 counter_edge: route=/read",
        "<190>Nov 29 16:00:54 counter_edge: status=429 route=/read",
    ])
    func refusesAnythingElse(_ text: String) {
        #expect(EdgeLogLine(datagram: Array(text.utf8)) == nil)
    }

    @Test func refusesOverlongAndBinaryDatagrams() {
        let padding = String(repeating: "x", count: EdgeLogLine.maxDatagramBytes)
        #expect(EdgeLogLine(datagram: Array("\(padding) route=/read status=429".utf8)) == nil)
        #expect(EdgeLogLine(datagram: [0xFF, 0xFE, 0x00] + Array(" route=/read status=429".utf8))
            == EdgeLogLine(route: "/read", status: 429))
        #expect(EdgeLogLine(datagram: Array("route=/re\u{00e9}d status=429".utf8)) == nil)
    }
}
