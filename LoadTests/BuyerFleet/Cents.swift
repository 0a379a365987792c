/// A money amount in whole cents, so bids are drawn and printed without binary-float noise.
struct Cents: Sendable, Hashable, Comparable {
    var value: Int

    init(_ value: Int) {
        self.value = value
    }

    /// Parses a non-negative decimal string such as `"12"`, `"12.5"` or `"12.50"`; more than two
    /// decimals, signs, exponents and empty strings are rejected.
    init?(decimal text: String) {
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let whole = parts[0]
        let fraction = parts.count == 2 ? parts[1] : ""
        guard !whole.isEmpty, whole.utf8.count <= 12, fraction.utf8.count <= 2,
              (whole + fraction).allSatisfy(\.isASCIIDigit),
              let units = Int(whole), let hundredths = Int(fraction.padding(toLength: 2))
        else { return nil }
        value = units * 100 + hundredths
    }

    static func < (lhs: Cents, rhs: Cents) -> Bool {
        lhs.value < rhs.value
    }

    /// A uniformly drawn amount between the two, inclusive, in either order.
    static func random(between a: Cents, and b: Cents, using rng: inout some RandomNumberGenerator) -> Cents {
        Cents(Int.random(in: min(a, b).value...max(a, b).value, using: &rng))
    }

    /// The amount as a JSON number with at most two decimals: `12.5`, `12.05`, `12`.
    var jsonNumber: String {
        let units = value / 100
        let hundredths = value % 100
        switch hundredths {
        case 0: return "\(units)"
        case let h where h % 10 == 0: return "\(units).\(h / 10)"
        case let h where h < 10: return "\(units).0\(h)"
        case let h: return "\(units).\(h)"
        }
    }
}

private extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}

private extension Substring {
    /// Right-pads with zeros: "5" -> "50", "" -> "00".
    func padding(toLength length: Int) -> String {
        String(self) + String(repeating: "0", count: Swift.max(0, length - count))
    }
}
