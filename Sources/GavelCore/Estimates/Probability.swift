/// A chance between 0 and 1, in millionths.
///
/// Like `Money` it is an integer: estimates are made, compared and multiplied by prices without
/// floating point, so a ranking by expected value is exact and the same on every machine.
public struct Probability: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// Millionths per 1.
    public static let scale: Int64 = 1_000_000
    public static let zero = Probability(ppm: 0)
    public static let one = Probability(ppm: scale)

    /// The chance in millionths, `0...1_000_000`.
    public let ppm: Int64

    /// Clamps to `0...1_000_000`.
    public init(ppm: Int64) { self.ppm = min(max(ppm, 0), Probability.scale) }

    // Encoded as its integer millionths, like `Money`.
    public init(from decoder: any Decoder) throws { self.init(ppm: try decoder.singleValueContainer().decode(Int64.self)) }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(ppm)
    }

    /// Parses decimal text between 0 and 1 with at most 6 decimals (`0.5`, `0.875`, `1`); nil otherwise.
    public init?(decimal text: some StringProtocol) {
        var whole: Int64 = 0
        var fraction: Int64 = 0
        var fractionDigits = 0
        var sawDigit = false
        var sawPoint = false
        for byte in Substring(text).utf8 {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                let digit = Int64(byte - UInt8(ascii: "0"))
                sawDigit = true
                if sawPoint {
                    fractionDigits += 1
                    guard fractionDigits <= 6 else { return nil }
                    fraction = fraction * 10 + digit
                } else {
                    whole = whole * 10 + digit
                    guard whole <= 1 else { return nil }
                }
            case UInt8(ascii: "."):
                guard !sawPoint, sawDigit else { return nil }
                sawPoint = true
            default:
                return nil
            }
        }
        guard sawDigit, !(sawPoint && fractionDigits == 0) else { return nil }
        for _ in fractionDigits..<6 { fraction *= 10 }
        let ppm = whole * Probability.scale + fraction
        guard ppm <= Probability.scale else { return nil }
        self.ppm = ppm
    }

    /// Decimal text without trailing zeros (`0.5`, `0.012345`, `1`): valid as a JSON number.
    public var description: String {
        let whole = ppm / Probability.scale
        var fraction = ppm % Probability.scale
        guard fraction != 0 else { return "\(whole)" }
        var digits = 6
        while fraction % 10 == 0 { fraction /= 10; digits -= 1 }
        var text = String(fraction)
        while text.count < digits { text = "0" + text }
        return "\(whole).\(text)"
    }

    /// For metrics only: never for decisions.
    public var doubleValue: Double { Double(ppm) / Double(Probability.scale) }

    public static func < (lhs: Probability, rhs: Probability) -> Bool { lhs.ppm < rhs.ppm }
}
