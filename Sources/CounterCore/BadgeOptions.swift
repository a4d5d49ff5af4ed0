/// How a badge looks, read from its query string (`label=`, `color=`, `labelColor=`, `style=`,
/// `abbreviate=`) and checked, each with a 400 that says the rule. Parameters a badge does not
/// read are ignored (a page may add its own, such as a cache-busting `v=`).
public struct BadgeOptions: Sendable, Equatable {
    /// The longest label, in characters.
    public static let maxLabelLength = 64

    /// The left-hand text; empty: the badge shows the value alone.
    public var label: String
    /// The value's background.
    public var color: BadgeColor
    /// The label's background.
    public var labelColor: BadgeColor
    /// The shape.
    public var style: BadgeStyle
    /// Show the value as `12.3k` instead of `12345`.
    public var abbreviate: Bool

    /// Options from their values (tests); the label defaults to the counter's name.
    public init(label: String, color: BadgeColor = .defaultValue, labelColor: BadgeColor = .defaultLabel,
                style: BadgeStyle = .flat, abbreviate: Bool = false) {
        self.label = label
        self.color = color
        self.labelColor = labelColor
        self.style = style
        self.abbreviate = abbreviate
    }

    /// The options `query` asks for; the label is `name`'s text when `label` is not given.
    public init(_ query: QueryString, name: CounterName) throws(APIError) {
        self.init(label: name.text)
        if let label = query["label"] {
            // Control characters are refused by QueryString already; these two are not allowed in XML at all.
            guard label.count <= BadgeOptions.maxLabelLength,
                  !label.unicodeScalars.contains(where: { $0.value == 0xFFFE || $0.value == 0xFFFF || (0x80...0x9F).contains($0.value) }) else {
                throw .badRequest(detail: "label must be at most \(BadgeOptions.maxLabelLength) printable characters")
            }
            self.label = label
        }
        color = try BadgeOptions.color(query, "color", default: .defaultValue)
        labelColor = try BadgeOptions.color(query, "labelColor", default: .defaultLabel)
        if let text = query["style"] {
            guard let style = BadgeStyle(rawValue: text) else {
                throw .badRequest(detail: "style must be one of \(BadgeStyle.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            self.style = style
        }
        abbreviate = try query.flag("abbreviate", default: false)
    }

    private static func color(_ query: QueryString, _ name: String, default fallback: BadgeColor) throws(APIError) -> BadgeColor {
        guard let text = query[name] else { return fallback }
        guard let color = BadgeColor(text) else {
            throw .badRequest(detail: "\(name) must be a colour name (\(BadgeColor.names.joined(separator: ", "))) or 3 or 6 hex digits")
        }
        return color
    }
}

/// A badge's shape.
public enum BadgeStyle: String, CaseIterable, Sendable {
    /// Rounded corners and a light gradient, with a shadow under the text.
    case flat
    /// Square corners, flat colours.
    case flatSquare = "flat-square"
}

/// A badge colour: one of the usual names, or hex digits (`4c1`, `#007ec6`), kept as `#rrggbb`.
public struct BadgeColor: Sendable, Equatable {
    /// The colour as SVG takes it: `#` and six lowercase hex digits.
    public let hex: String

    /// The named colours, in the order the error lists them, with their values.
    static let named: [(name: String, hex: String)] = [
        ("brightgreen", "#44cc11"), ("green", "#97ca00"), ("yellowgreen", "#a4a61d"), ("yellow", "#dfb317"),
        ("orange", "#fe7d37"), ("red", "#e05d44"), ("blue", "#007ec6"), ("lightgrey", "#9f9f9f"),
        ("grey", "#555555"), ("gray", "#555555"), ("black", "#000000"), ("white", "#ffffff"),
    ]
    /// The names a colour may be given by.
    public static var names: [String] { named.map(\.name) }

    /// The default value background (blue).
    public static let defaultValue = BadgeColor(checkedHex: "#007ec6")
    /// The default label background (dark grey).
    public static let defaultLabel = BadgeColor(checkedHex: "#555555")

    private init(checkedHex: String) { hex = checkedHex }

    /// The colour `text` names, or nil.
    public init?(_ text: String) {
        if let entry = BadgeColor.named.first(where: { $0.name == text.lowercased() }) {
            hex = entry.hex
            return
        }
        var digits = Substring(text)
        if digits.first == "#" { digits = digits.dropFirst() }
        guard digits.count == 3 || digits.count == 6, digits.allSatisfy(\.isHexDigit) else { return nil }
        let lower = digits.lowercased()
        hex = "#" + (lower.count == 3 ? lower.map { "\($0)\($0)" }.joined() : lower)
    }

    /// Whether dark text reads better than white on this colour: its relative luminance
    /// (sRGB, WCAG's formula without the gamma step, which does not change the order) is high.
    public var isLight: Bool {
        let value = Int(hex.dropFirst(), radix: 16) ?? 0
        let red = Double(value >> 16 & 0xFF), green = Double(value >> 8 & 0xFF), blue = Double(value & 0xFF)
        return (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255 > 0.65
    }
}
