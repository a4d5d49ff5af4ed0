/// A counter's badge: a small SVG with a label on the left and the value on the right, in the
/// shape READMEs and dashboards already show for build status (shields-style).
///
/// The SVG is written here, from known parts only: the label and value are XML-escaped, colours
/// are `#rrggbb` (``BadgeColor``), numbers are ours. No script, no external reference, no style
/// element: the response's CSP forbids them anyway. Widths come from Verdana's advance widths
/// (``BadgeText``); each text also carries `textLength`, so a viewer whose fallback font is wider
/// or narrower stretches the spacing instead of overflowing the box.
public struct Badge: Sendable {
    /// What the left-hand side says; empty for a value-only badge.
    public var label: String
    /// What the right-hand side says.
    public var value: String
    /// Colours and shape.
    public var options: BadgeOptions

    /// A badge from its texts and options.
    public init(label: String, value: String, options: BadgeOptions) {
        self.label = label
        self.value = value
        self.options = options
    }

    /// The height of every badge, in pixels.
    public static let height = 20
    /// The space left and right of each text, in pixels.
    static let padding = 5.0

    /// The SVG document, UTF-8.
    public func svg() -> [UInt8] {
        let labelText = BadgeText(label), valueText = BadgeText(value)
        let labelWidth = label.isEmpty ? 0 : Int((labelText.width + 2 * Badge.padding).rounded(.up))
        let valueWidth = Int((valueText.width + 2 * Badge.padding).rounded(.up))
        let width = labelWidth + valueWidth
        let flat = options.style == .flat
        let title = label.isEmpty ? value : "\(label): \(value)"

        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(Badge.height)\" role=\"img\" aria-label=\"\(xml(title))\">"
        out += "<title>\(xml(title))</title>"
        if flat {
            out += "<linearGradient id=\"s\" x2=\"0\" y2=\"100%\"><stop offset=\"0\" stop-color=\"#bbb\" stop-opacity=\".1\"/>"
            out += "<stop offset=\"1\" stop-opacity=\".1\"/></linearGradient>"
            out += "<clipPath id=\"r\"><rect width=\"\(width)\" height=\"\(Badge.height)\" rx=\"3\" fill=\"#fff\"/></clipPath>"
            out += "<g clip-path=\"url(#r)\">"
        } else {
            out += "<g shape-rendering=\"crispEdges\">"
        }
        if labelWidth > 0 {
            out += "<rect width=\"\(labelWidth)\" height=\"\(Badge.height)\" fill=\"\(options.labelColor.hex)\"/>"
        }
        out += "<rect x=\"\(labelWidth)\" width=\"\(valueWidth)\" height=\"\(Badge.height)\" fill=\"\(options.color.hex)\"/>"
        if flat { out += "<rect width=\"\(width)\" height=\"\(Badge.height)\" fill=\"url(#s)\"/>" }
        out += "</g>"
        out += "<g text-anchor=\"middle\" font-family=\"Verdana,Geneva,DejaVu Sans,sans-serif\" font-size=\"11\">"
        if labelWidth > 0 {
            out += text(label, labelText, centre: Double(labelWidth) / 2, on: options.labelColor, shadow: flat)
        }
        out += text(value, valueText, centre: Double(labelWidth) + Double(valueWidth) / 2, on: options.color, shadow: flat)
        out += "</g></svg>"
        return Array(out.utf8)
    }

    /// One text, centred at `centre`, in the colour that reads on `background`; with `shadow`,
    /// a faint copy one pixel lower first (the flat style's embossed look).
    private func text(_ content: String, _ measured: BadgeText, centre: Double, on background: BadgeColor, shadow: Bool) -> String {
        let (fill, shade) = background.isLight ? ("#333", "#fff") : ("#fff", "#010101")
        let x = decimal(centre), length = decimal(measured.width)
        let escaped = xml(content)
        var out = ""
        if shadow {
            out += "<text x=\"\(x)\" y=\"15\" fill=\"\(shade)\" fill-opacity=\".3\" textLength=\"\(length)\" lengthAdjust=\"spacing\" aria-hidden=\"true\">\(escaped)</text>"
        }
        out += "<text x=\"\(x)\" y=\"14\" fill=\"\(fill)\" textLength=\"\(length)\" lengthAdjust=\"spacing\">\(escaped)</text>"
        return out
    }

    /// One decimal at most: `42`, `42.5`.
    private func decimal(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return tenths % 10 == 0 ? String(tenths / 10) : "\(tenths / 10).\(tenths % 10)"
    }
}

/// `text` escaped for XML character data and attribute values (both quote kinds).
func xml(_ text: String) -> String {
    guard text.utf8.contains(where: { [UInt8(ascii: "&"), UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "\""), UInt8(ascii: "'")].contains($0) }) else {
        return text
    }
    var out = ""
    out.reserveCapacity(text.utf8.count + 16)
    for character in text.unicodeScalars {
        switch character {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&apos;"
        default: out.unicodeScalars.append(character)
        }
    }
    return out
}

/// A text's width in Verdana at 11 px, from the font's advance widths (thousandths of an em,
/// rounded); characters outside ASCII count as a wide letter, or two for East Asian and emoji
/// ranges, so a badge errs on the roomy side.
struct BadgeText {
    let width: Double

    init(_ text: String) {
        var thousandths = 0
        for scalar in text.unicodeScalars {
            let value = Int(scalar.value)
            if value >= 0x20 && value < 0x7F {
                thousandths += BadgeText.ascii[value - 0x20]
            } else if value >= 0x1100 {
                thousandths += 1000
            } else {
                thousandths += 700
            }
        }
        width = Double(thousandths) * 11 / 1000
    }

    /// Verdana's advance widths for U+0020 to U+007E, in thousandths of an em.
    private static let ascii: [Int] = [
        352, 394, 459, 818, 636, 1076, 727, 269, 454, 454, 636, 818, 364, 454, 364, 454,  // space ! " # $ % & ' ( ) * + , - . /
        636, 636, 636, 636, 636, 636, 636, 636, 636, 636, 454, 454, 818, 818, 818, 545,    // 0-9 : ; < = > ?
        1000, 684, 686, 698, 771, 632, 575, 775, 751, 421, 455, 693, 557, 843, 748, 787,  // @ A-O
        603, 787, 695, 684, 616, 732, 684, 989, 685, 615, 685, 454, 454, 454, 818, 636,    // P-Z [ \ ] ^ _
        636, 601, 623, 521, 623, 596, 352, 623, 633, 274, 344, 592, 274, 973, 633, 607,    // ` a-o
        623, 623, 427, 521, 394, 633, 592, 818, 592, 592, 525, 635, 454, 635, 818,         // p-z { | } ~
    ]
}
