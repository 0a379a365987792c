/// Phone numbers and call destinations as buyers and telephony fronts write them.
public enum PhoneNumber {
    /// E.164 (`+15551234567`) from the usual ways of writing a number: with or without `+`,
    /// spaces, dashes, dots or parentheses; 10 digits are taken as North American (+1).
    public static func e164(_ text: String) -> String? {
        var digits = ""
        for (index, character) in text.enumerated() {
            if character.isASCII, character.isNumber {
                digits.append(character)
            } else if character == "+" && index == 0 {
                continue
            } else if !" -.()".contains(character) {
                return nil
            }
        }
        if digits.count == 10, !text.hasPrefix("+") { digits = "1" + digits }
        guard (8...15).contains(digits.count), digits.first != "0" else { return nil }
        return "+" + digits
    }

    /// A routable destination: an E.164 number, or a `sip:` / `sips:` URI with a user and host.
    public static func destination(_ text: String) -> String? {
        let trimmed = text.trimmingSpaces()
        let lower = trimmed.lowercased()
        if lower.hasPrefix("sip:") || lower.hasPrefix("sips:") {
            let rest = trimmed.drop { $0 != ":" }.dropFirst()
            let parts = rest.split(separator: "@", maxSplits: 1)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty, !rest.contains(" ") else { return nil }
            return String(trimmed)
        }
        return e164(String(trimmed))
    }

    /// The three-digit area code of a North American number, for pings.
    public static func areaCode(_ e164: String) -> String? {
        guard e164.hasPrefix("+1"), e164.count == 12 else { return nil }
        return String(e164.dropFirst(2).prefix(3))
    }
}
