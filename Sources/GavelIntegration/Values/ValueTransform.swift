import GavelCore

/// One step after `|` in a reference: what integrators need to meet a buyer's field formats.
enum ValueTransform: Sendable, Hashable {
    /// Digits only (`(555) 010-0100` → `5550100100`).
    case digits
    /// The ten digits of a US number (drops a leading 1 of eleven).
    case phone10
    /// `+1` and ten digits for a US number; other digits with `+`.
    case e164
    case upper
    case lower
    case trim
    /// A date or time reformatted: `YYYY`, `YY`, `MM`, `DD`, `HH`, `mm`, `ss` tokens, or `unix`/`unix_ms`.
    case date(String)
    /// The value when there is none (missing, null or empty text).
    case defaultValue(String)
    /// A value map of the buyer (`maps:`); values it does not list pass unchanged.
    case map(name: String, table: [String: String])
    /// JSON number (bodies: `"12"` → `12`); not a number → missing.
    case number
    /// Whole number, rounding toward zero.
    case int
    /// JSON text.
    case string
    /// JSON boolean from `true/false/yes/no/1/0/on/off`.
    case bool
    /// At most N characters.
    case truncate(Int)
    /// An amount in cents, as a whole number (`12.5` → `1250`).
    case cents

    static let names = ["digits", "phone10", "e164", "upper", "lower", "trim", "date:FORMAT", "default:VALUE", "map:NAME",
                        "number", "int", "string", "bool", "truncate:N", "cents"]

    static func parse(_ text: String, maps: [String: [String: String]]) throws(TemplateProblem) -> ValueTransform {
        let name: String
        let argument: String?
        if let colon = text.firstIndex(of: ":") {
            name = String(text[..<colon]).trimmed
            argument = String(text[text.index(after: colon)...])
        } else {
            name = text
            argument = nil
        }
        func needsArgument() throws(TemplateProblem) -> String {
            guard let argument, !argument.isEmpty else { throw TemplateProblem("", "transform \(name) needs an argument (\(name):…)") }
            return argument
        }
        switch name {
        case "digits": return .digits
        case "phone10": return .phone10
        case "e164": return .e164
        case "upper": return .upper
        case "lower": return .lower
        case "trim": return .trim
        case "number": return .number
        case "int": return .int
        case "string": return .string
        case "bool": return .bool
        case "cents": return .cents
        case "default": return .defaultValue(argument ?? "")
        case "date":
            let format = try needsArgument()
            guard DateText.isValidFormat(format) else {
                throw TemplateProblem("", "date format \"\(format)\" has no YYYY, YY, MM, DD, HH, mm or ss (or use unix, unix_ms)")
            }
            return .date(format)
        case "truncate":
            let count = try needsArgument()
            guard let limit = Int(count.trimmed), limit > 0 else { throw TemplateProblem("", "truncate needs a positive whole number, got \"\(count)\"") }
            return .truncate(limit)
        case "map":
            let mapName = try needsArgument().trimmed
            guard let table = maps[mapName] else {
                throw TemplateProblem("", "no value map \"\(mapName)\" (maps: \(maps.keys.sorted().joined(separator: ", ")))")
            }
            return .map(name: mapName, table: Dictionary(table.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { first, _ in first }))
        default:
            throw TemplateProblem("", "unknown transform \"\(name)\" (known: \(names.joined(separator: ", ")))")
        }
    }

    func apply(_ value: JSONValue?) -> JSONValue? {
        if case .defaultValue(let fallback) = self {
            guard let value, value.templateText.map({ !$0.isEmpty }) ?? false else { return .string(fallback) }
            return value
        }
        guard let value, let text = value.templateText else { return nil }
        switch self {
        case .digits:
            return .string(String(text.filter(\.isASCIIDigit)))
        case .phone10:
            var digits = String(text.filter(\.isASCIIDigit))
            if digits.count == 11, digits.hasPrefix("1") { digits.removeFirst() }
            return .string(digits)
        case .e164:
            let digits = String(text.filter(\.isASCIIDigit))
            guard !digits.isEmpty else { return nil }
            return .string(digits.count == 10 ? "+1" + digits : "+" + digits)
        case .upper: return .string(text.uppercased())
        case .lower: return .string(text.lowercased())
        case .trim: return .string(text.trimmed)
        case .date(let format):
            guard let instant = DateText.parse(text) else { return nil }
            return .string(DateText.format(instant, as: format))
        case .map(_, let table):
            return table[text.lowercased()].map(JSONValue.string) ?? value
        case .number:
            let trimmed = text.trimmed
            guard (try? JSONValue.parse(trimmed)).map({ if case .number = $0 { return true } else { return false } }) ?? false else { return nil }
            return .number(trimmed)
        case .int:
            let trimmed = text.trimmed
            let whole = trimmed.split(separator: ".", maxSplits: 1).first.map(String.init) ?? trimmed
            guard let integer = Int(whole) else { return nil }
            return .number(String(integer))
        case .string: return .string(text)
        case .bool:
            switch text.trimmed.lowercased() {
            case "true", "yes", "y", "1", "on": return .bool(true)
            case "false", "no", "n", "0", "off": return .bool(false)
            default: return nil
            }
        case .truncate(let limit): return .string(String(text.prefix(limit)))
        case .cents:
            guard let amount = Money(decimal: text.trimmed, allowNegative: true) else { return nil }
            return .number(String(amount.units / 100))
        case .defaultValue: return value
        }
    }
}

extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}

/// Dates without Foundation formatters: parsed from ISO 8601 dates and times, US `MM/DD/YYYY` or
/// unix seconds, written with simple tokens. Fixed rules, no locale, nothing to go stale per request.
enum DateText {
    struct Instant: Hashable {
        var year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int
        /// Milliseconds since the epoch, UTC.
        var unixMs: Int64 {
            let days = DateText.daysFromCivil(year: year, month: month, day: day)
            return (days * 86_400 + Int64(hour * 3600 + minute * 60 + second)) * 1000
        }
    }

    static func isValidFormat(_ format: String) -> Bool {
        format == "unix" || format == "unix_ms" || ["YYYY", "YY", "MM", "DD", "HH", "mm", "ss"].contains { format.contains($0) }
    }

    static func parse(_ raw: String) -> Instant? {
        let text = raw.trimmed
        let digits = text.filter(\.isASCIIDigit)
        if digits.count == text.count, (9...10).contains(text.count), let seconds = Int64(text) {
            return instant(unixMs: seconds * 1000)
        }
        guard text.count <= 64 else { return nil }
        // Untrusted text: a part longer than 4 digits is not a date part (and must never reach the
        // arithmetic below, where it could overflow). Fractions of a second, after the 6th part, are ignored.
        let parts = text.split(whereSeparator: { !$0.isASCIIDigit })
        let numbers = parts.map { $0.count <= 4 ? Int($0) ?? -1 : -1 }
        var result: Instant
        var offsetS = 0
        if text.count >= 10, text.dropFirst(4).first == "-", numbers.count >= 3 {
            result = Instant(year: numbers[0], month: numbers[1], day: numbers[2], hour: 0, minute: 0, second: 0)
            if numbers.count >= 5 {
                result.hour = numbers[3]
                result.minute = numbers[4]
                result.second = numbers.count >= 6 ? numbers[5] : 0
                // A numeric offset (`+02:00`, `-0500`): moved to UTC once the parts are checked.
                let tail = text.dropFirst(19)
                if let signIndex = tail.lastIndex(where: { $0 == "+" || $0 == "-" }) {
                    let offsetDigits = tail[tail.index(after: signIndex)...].filter(\.isASCIIDigit)
                    if offsetDigits.count == 4, let hours = Int(offsetDigits.prefix(2)), let minutes = Int(offsetDigits.suffix(2)),
                       hours <= 23, minutes <= 59 {
                        offsetS = (tail[signIndex] == "+" ? -1 : 1) * (hours * 3600 + minutes * 60)
                    }
                }
            }
        } else if numbers.count == 3, text.contains("/") {
            result = Instant(year: numbers[2], month: numbers[0], day: numbers[1], hour: 0, minute: 0, second: 0)
        } else {
            return nil
        }
        guard (1...9999).contains(result.year), (1...12).contains(result.month), (1...31).contains(result.day),
              (0...23).contains(result.hour), (0...59).contains(result.minute), (0...60).contains(result.second)
        else { return nil }
        return offsetS == 0 ? result : instant(unixMs: result.unixMs + Int64(offsetS) * 1000)
    }

    static func format(_ instant: Instant, as format: String) -> String {
        if format == "unix" { return String(instant.unixMs / 1000) }
        if format == "unix_ms" { return String(instant.unixMs) }
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : String(value) }
        var output = ""
        var rest = Substring(format)
        let tokens: [(String, String)] = [
            ("YYYY", String(instant.year)), ("YY", two(instant.year % 100)), ("MM", two(instant.month)), ("DD", two(instant.day)),
            ("HH", two(instant.hour)), ("mm", two(instant.minute)), ("ss", two(instant.second)),
        ]
        outer: while !rest.isEmpty {
            for (token, value) in tokens where rest.hasPrefix(token) {
                output += value
                rest = rest.dropFirst(token.count)
                continue outer
            }
            output.append(rest.removeFirst())
        }
        return output
    }

    static func rfc3339(unixMs: Int64) -> String {
        format(instant(unixMs: unixMs), as: "YYYY-MM-DDTHH:mm:ssZ")
    }

    static func instant(unixMs: Int64) -> Instant {
        let seconds = unixMs >= 0 ? unixMs / 1000 : (unixMs - 999) / 1000
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = Int(seconds - days * 86_400)
        let (year, month, day) = civilFromDays(days)
        return Instant(year: year, month: month, day: day, hour: secondOfDay / 3600, minute: secondOfDay % 3600 / 60, second: secondOfDay % 60)
    }

    // Howard Hinnant's civil calendar algorithms (proleptic Gregorian).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let m = Int64(month)
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civilFromDays(_ days: Int64) -> (Int, Int, Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        return (Int(year), Int(month), Int(day))
    }
}
