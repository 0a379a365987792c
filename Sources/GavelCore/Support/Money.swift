/// An amount of money in 1/10,000 currency units.
///
/// Money is never a floating point number in Gavel: it is parsed from the decimal text of a JSON
/// number or YAML scalar, stored and summed as an integer, and printed back as decimal text.
public struct Money: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    /// Units per currency unit: four decimal places.
    public static let scale: Int64 = 10_000
    public static let zero = Money(units: 0)

    /// The amount in 1/10,000 currency units.
    public var units: Int64

    public init(units: Int64) { self.units = units }

    // Encoded as its integer units: snapshots of live state never go through floating point.
    public init(from decoder: any Decoder) throws { units = try decoder.singleValueContainer().decode(Int64.self) }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(units)
    }

    /// Whole currency units, for literals in code and tests.
    public init(_ whole: Int) { self.units = Int64(whole) * Money.scale }

    /// Parses decimal text such as `18.5`, `0.0025` or `120`; at most 4 decimals, no exponent.
    /// Returns nil for anything else, including negative amounts when `allowNegative` is false.
    public init?(decimal text: some StringProtocol, allowNegative: Bool = false) {
        var utf8 = Substring(text).utf8[...]
        var negative = false
        if utf8.first == UInt8(ascii: "-") {
            guard allowNegative else { return nil }
            negative = true
            utf8 = utf8.dropFirst()
        }
        guard let units = FixedPointText.parse(utf8, decimals: 4, maxWhole: 99_999_999_999_999) else { return nil }
        self.units = negative ? -units : units
    }

    /// Decimal text without trailing zeros: `18.5`, `0.0025`, `120`. Valid as a JSON number.
    public var description: String {
        let sign = units < 0 ? "-" : ""
        let magnitude = units.magnitude
        let whole = magnitude / UInt64(Money.scale)
        var fraction = magnitude % UInt64(Money.scale)
        guard fraction != 0 else { return "\(sign)\(whole)" }
        var digits = 4
        while fraction % 10 == 0 { fraction /= 10; digits -= 1 }
        var fractionText = String(fraction)
        while fractionText.count < digits { fractionText = "0" + fractionText }
        return "\(sign)\(whole).\(fractionText)"
    }

    public static func < (lhs: Money, rhs: Money) -> Bool { lhs.units < rhs.units }
    // Sums saturate instead of trapping: a sum of amounts from outside must never kill the process.
    // Bids are bounded by `max_bid`, so real sums stay far from the limits.
    public static func + (lhs: Money, rhs: Money) -> Money {
        let (sum, overflow) = lhs.units.addingReportingOverflow(rhs.units)
        return Money(units: overflow ? (rhs.units > 0 ? .max : .min) : sum)
    }
    public static func - (lhs: Money, rhs: Money) -> Money {
        let (difference, overflow) = lhs.units.subtractingReportingOverflow(rhs.units)
        return Money(units: overflow ? (rhs.units < 0 ? .max : .min) : difference)
    }
    public static func += (lhs: inout Money, rhs: Money) { lhs = lhs + rhs }
    public static func -= (lhs: inout Money, rhs: Money) { lhs = lhs - rhs }

    /// This amount times `basisPoints`/10,000, rounded down to the unit: revenue shares.
    public func share(basisPoints: Int64) -> Money {
        // (q * 10^4 + r) * bp / 10^4 = q * bp + r * bp / 10^4: exact, and no intermediate overflow.
        let (quotient, remainder) = units.quotientAndRemainder(dividingBy: 10_000)
        return Money(units: quotient * basisPoints + remainder * basisPoints / 10_000)
    }
}

/// Decimal text to fixed point: digits with at most `decimals` after one point, no sign or
/// exponent, the whole part at most `maxWhole` (so the result stays inside `Int64`). Shared by
/// `Money` (4 decimals) and `Probability` (6).
enum FixedPointText {
    static func parse(_ utf8: Substring.UTF8View, decimals: Int, maxWhole: Int64) -> Int64? {
        var whole: Int64 = 0
        var fraction: Int64 = 0
        var fractionDigits = 0
        var sawDigit = false
        var sawPoint = false
        for byte in utf8 {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                let digit = Int64(byte - UInt8(ascii: "0"))
                sawDigit = true
                if sawPoint {
                    fractionDigits += 1
                    guard fractionDigits <= decimals else { return nil }
                    fraction = fraction * 10 + digit
                } else {
                    guard whole <= (maxWhole - digit) / 10 else { return nil }
                    whole = whole * 10 + digit
                }
            case UInt8(ascii: "."):
                guard !sawPoint, sawDigit else { return nil }
                sawPoint = true
            default:
                return nil
            }
        }
        guard sawDigit, !(sawPoint && fractionDigits == 0) else { return nil }
        for _ in fractionDigits..<decimals { fraction *= 10 }
        var scale: Int64 = 1
        for _ in 0..<decimals { scale *= 10 }
        return whole * scale + fraction
    }
}
