import Testing
@testable import CounterCore

@Suite("Log throttle")
struct LogThrottleTests {
    @Test func onePerIntervalWithTheCountHeldBack() {
        var throttle = LogThrottle(intervalNS: 1_000)
        #expect(throttle.admit(now: 5_000) == 0, "the first line always goes out")
        #expect(throttle.admit(now: 5_001) == nil)
        #expect(throttle.admit(now: 5_999) == nil)
        #expect(throttle.admit(now: 6_000) == 2, "the next line says how many were held back")
        #expect(throttle.admit(now: 6_500) == nil)
        #expect(throttle.admit(now: 9_000) == 1)
        #expect(throttle.admit(now: 20_000) == 0)
    }

    @Test func aLineAtTimeZeroCounts() {
        var throttle = LogThrottle(intervalNS: 10)
        #expect(throttle.admit(now: 0) == 0)
        #expect(throttle.admit(now: 5) == nil, "monotonic time 0 is a real time, not 'never'")
    }
}
