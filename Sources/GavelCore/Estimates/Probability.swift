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
        guard let ppm = FixedPointText.parse(Substring(text).utf8, decimals: 6, maxWhole: 1) else { return nil }
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
