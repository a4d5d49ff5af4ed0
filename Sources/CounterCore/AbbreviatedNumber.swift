/// A counter value as a badge shows it on request (`abbreviate=1`): at most four significant
/// characters and an SI suffix, `999`, `1.2k`, `12.3k`, `123k`, `1.2M`, up to `E` (10^18), which
/// covers the whole 64-bit range. Rounded half up on the shown digit, so `999,950` is `1M`, not
/// `1000k`; a trailing `.0` is dropped (`2k`, not `2.0k`). Negative values keep their sign.
public enum AbbreviatedNumber {
    private static let suffixes: [String] = ["k", "M", "G", "T", "P", "E"]

    /// The abbreviation of `value`.
    public static func text(_ value: Int64) -> String {
        let sign = value < 0 ? "-" : ""
        let magnitude = value.magnitude  // exact for Int64.min as well
        guard magnitude >= 1000 else { return sign + String(magnitude) }
        var unit: UInt64 = 1000
        for (index, suffix) in suffixes.enumerated() {
            let isLast = index == suffixes.count - 1
            // Tenths of the unit, rounded half up; computed without overflow near UInt64.max.
            let tenths = magnitude / unit * 10 + (magnitude % unit * 10 + unit / 2) / unit
            if tenths < 1000 {
                // Below 100 units: one decimal, unless it is 0.
                let whole = tenths / 10, decimal = tenths % 10
                return sign + String(whole) + (decimal == 0 ? "" : "." + String(decimal)) + suffix
            }
            let rounded = magnitude / unit + (magnitude % unit >= unit - unit / 2 ? 1 : 0)
            if rounded < 1000 || isLast { return sign + String(rounded) + suffix }
            unit *= 1000
        }
        return sign + String(magnitude)  // not reached: the last suffix always answers
    }
}
