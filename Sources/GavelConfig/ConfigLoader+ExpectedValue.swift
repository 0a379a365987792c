import GavelCore

/// Expected-value ranking in `campaigns.yaml`: a campaign's `rank_by` and `ev_fallback`, and the
/// estimates' priors by kind at the top of the file:
///
///     ev_prior:                       # optional; both kinds default to {rate: 1, weight: 10}
///       lead: {rate: 0.9, weight: 10} # chance a post is accepted
///       call: {rate: 1, weight: 20}   # chance a routed call converts
///     campaigns:
///       - id: calls
///         rank_by: expected_value     # price (default) | expected_value
///       - id: autos
///         rank_by: expected_value
///         ev_fallback: 0.5            # leads only: chance a post that fails leaves time for the next
extension ConfigLoader {
    static func readRankBy(_ field: YAMLField, kind: AuctionKind) -> RankBy {
        let name = field.child("rank_by").oneOf(RankBy.Name.self, default: .price)
        let fallbackField = field.child("ev_fallback")
        let fallback = fallbackField.probability()
        if fallbackField.isPresent {
            if name != .expectedValue {
                fallbackField.problem("applies to rank_by: expected_value")
            } else if kind == .call {
                fallbackField.problem("applies to lead campaigns: a connected caller cannot fall back")
            }
        }
        switch name {
        case .price: return .price
        case .expectedValue: return .expectedValue(fallback: kind == .call ? .zero : fallback ?? .zero)
        }
    }

    static func readOutcomePriors(_ field: YAMLField) -> [AuctionKind: OutcomePrior] {
        guard field.isPresent, field.mapping(known: Set(AuctionKind.allCases.map(\.rawValue))) else { return [:] }
        var priors: [AuctionKind: OutcomePrior] = [:]
        for kind in AuctionKind.allCases {
            let entry = field.child(kind.rawValue)
            guard entry.isPresent, entry.mapping(known: ["rate", "weight"]) else { continue }
            let rate = entry.child("rate").probability() ?? OutcomePrior.default.rate
            let weight = entry.child("weight").int(range: 0...OutcomePrior.maxWeight) ?? OutcomePrior.default.weight
            priors[kind] = OutcomePrior(rate: rate, weight: weight)
        }
        return priors
    }
}

extension YAMLField {
    /// A chance from 0 to 1, with at most 6 decimals.
    func probability(required: Bool = false) -> Probability? {
        guard let text = string(required: required) else { return nil }
        guard let probability = Probability(decimal: text) else {
            problem("must be a number from 0 to 1 with at most 6 decimals, got \"\(text)\"")
            return nil
        }
        return probability
    }
}
