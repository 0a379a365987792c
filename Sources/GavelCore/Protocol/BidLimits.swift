/// Bounds on the numbers a buyer may send (CONTRACT v2, "Buyer answers are untrusted").
///
/// A buyer's answer is input from outside: every number in it is checked here before it meets a
/// clock or a sum, so no answer can trap, overflow or hold a bid for years.
public enum BidLimits {
    /// Seconds a bid may be held.
    public static let expiresInS: ClosedRange<Int> = 1...86_400
    /// A call bid's minimum billable duration, in seconds.
    public static let minDurationS: ClosedRange<Int> = 0...7_200

    /// A whole number within `range`: a JSON integer or a string of one. Nil when absent or null;
    /// `.failure` names what is wrong otherwise (fractions, exponents, words, out of range).
    public static func integer(_ value: JSONValue?, named name: String, in range: ClosedRange<Int>) -> Result<Int?, BidProblem> {
        guard let value, !value.isNull else { return .success(nil) }
        let text: String
        switch value {
        case .number(let number): text = number
        case .string(let string): text = string
        default: return .failure(BidProblem("\(name) must be a whole number"))
        }
        var digits = Substring(text)
        let negative = digits.first == "-"
        if negative { digits = digits.dropFirst() }
        guard !digits.isEmpty, digits.count <= 18, digits.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
              let magnitude = Int(digits)
        else { return .failure(BidProblem("\(name) must be a whole number, got \(text.prefix(32))")) }
        let number = negative ? -magnitude : magnitude
        guard range.contains(number) else {
            return .failure(BidProblem("\(name) must be between \(range.lowerBound) and \(range.upperBound), got \(text.prefix(32))"))
        }
        return .success(number)
    }
}

/// Why a buyer's answer was refused, for the round record.
public struct BidProblem: Error, Hashable, Sendable {
    public var detail: String
    public init(_ detail: String) { self.detail = detail }
}
