/// What a lead must look like for a buyer to be pinged.
public struct BuyerFilters: Sendable, Hashable {
    /// Allowed two-letter states; empty means any.
    public var states: Set<String>
    /// Allowed zip codes or zip prefixes (`941` matches `94107`); empty means any.
    public var zips: [String]
    public var schedule: Schedule?
    /// Rules on other lead fields (`filtered_rule` when one fails).
    public var rules: [FieldRule]

    public init(states: Set<String> = [], zips: [String] = [], schedule: Schedule? = nil, rules: [FieldRule] = []) {
        self.states = states
        self.zips = zips
        self.schedule = schedule
        self.rules = rules
    }
}

/// A rule on one lead field: its value must be one of `oneOf`, and/or a number within `min...max`.
/// A lead without the field fails the rule.
public struct FieldRule: Sendable, Hashable {
    public var field: String
    public var oneOf: Set<String>?
    public var min: Money?
    public var max: Money?

    public init(field: String, oneOf: Set<String>? = nil, min: Money? = nil, max: Money? = nil) {
        self.field = field
        self.oneOf = oneOf
        self.min = min
        self.max = max
    }

    public func accepts(_ value: JSONValue?) -> Bool {
        guard let value, !value.isNull else { return false }
        let text: String
        switch value {
        case .string(let string): text = string
        case .number(let number): text = number
        case .bool(let bool): text = bool ? "true" : "false"
        default: return false
        }
        if let oneOf, !oneOf.contains(text) { return false }
        if min != nil || max != nil {
            guard let amount = Money(decimal: text, allowNegative: true) else { return false }
            if let min, amount < min { return false }
            if let max, amount > max { return false }
        }
        return true
    }
}
