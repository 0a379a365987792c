import Foundation
import GavelCore

/// The books in the config directory: operators, buyers' own keys and campaigns' return terms.
///
///     operators.yaml                  # optional: absent means no operators (reports answer 401)
///       operators:
///         - {id: ops, api_key: "${GAVEL_OPERATOR_KEY}"}
///     buyers/*.yaml
///       api_key: ...                  # optional: the buyer's key for the buyer API and portal
///     campaigns.yaml
///       return_window_days: 7         # days after a sale its buyer may return it (default 7)
///       return_policy: reverse_payout # reverse_payout (default) | keep_payout
///
/// An API key belongs to one seller, buyer or operator: a key used twice is a problem that names
/// both files.
extension ConfigLoader {
    static let returnTermKeys: Set<String> = ["return_window_days", "return_policy"]

    static func readReturnTerms(_ field: YAMLField, into campaign: inout Campaign) {
        campaign.returnWindowDays = field.child("return_window_days").int(range: 0...Campaign.maxReturnWindowDays)
            ?? Campaign.defaultReturnWindowDays
        campaign.returnPolicy = field.child("return_policy").oneOf(ReturnPolicy.self, default: .reversePayout)
    }

    /// A bearer key: at least 8 characters, no spaces.
    static func readAPIKey(_ field: YAMLField, required: Bool = false) -> String? {
        guard let key = field.string(required: required) else { return nil }
        guard key.count >= 8, !key.contains(where: \.isWhitespace) else {
            field.problem("must be at least 8 characters without spaces")
            return nil
        }
        return key
    }

    /// `operators.yaml`, when the directory has one.
    static func readOperators(directory: String, log: ProblemLog) -> [Located<Operator>] {
        let name = "operators.yaml"
        guard FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent(name)),
              let root = document(directory: directory, name: name, log: log),
              root.mapping(known: ["operators"]) else { return [] }
        let list = root.child("operators")
        if !list.isPresent { list.problem("is required: a list of operators ({id, api_key})") }
        var ids = Set<String>()
        return list.elements().compactMap { field in
            guard field.mapping(known: ["id", "api_key"]) else { return nil }
            let id = identifier(field.child("id"))
            let key = readAPIKey(field.child("api_key"), required: true)
            guard let id, let key else { return nil }
            if !ids.insert(id).inserted { field.child("id").problem("duplicate operator id \"\(id)\"") }
            return Located(value: Operator(id: id, apiKey: key), field: field)
        }
    }

    /// Every API key names one principal: a key shared by a seller, a buyer or an operator with
    /// another is reported at the second, naming the first. (Two sellers sharing a key are
    /// reported by the sellers' own check.)
    static func checkAPIKeys(sellers: [Located<Seller>], buyers: [Located<Buyer>], operators: [Located<Operator>], log: ProblemLog) {
        struct Holder {
            var role: String
            var field: YAMLField
        }
        var holders: [String: Holder] = [:]
        var keyed: [(key: String, holder: Holder)] = sellers.map { ($0.value.apiKey, Holder(role: "seller", field: $0.field.child("api_key"))) }
        keyed += buyers.compactMap { buyer in buyer.value.apiKey.map { ($0, Holder(role: "buyer", field: buyer.field.child("api_key"))) } }
        keyed += operators.map { ($0.value.apiKey, Holder(role: "operator", field: $0.field.child("api_key"))) }
        for (key, holder) in keyed {
            guard let first = holders[key] else {
                holders[key] = holder
                continue
            }
            if first.role == "seller", holder.role == "seller" { continue }
            holder.field.problem(
                "the same API key is used by \(first.role) \(first.field.file) (\(first.field.path)): API keys must be unique across sellers, buyers and operators")
        }
    }
}
