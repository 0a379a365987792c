import GavelCore

/// One templated value: text with `{{source.path | transform | transform:argument}}` references,
/// parsed once when the config loads and rendered per request.
///
/// A value that is exactly one reference keeps the referenced value's JSON type (a number stays a
/// number in a JSON body); a value mixing text and references is text.
public struct ValueTemplate: Sendable, Hashable {
    enum Part: Sendable, Hashable {
        case text(String)
        case reference(Reference)
    }

    /// Where a reference reads from.
    public enum Source: String, Sendable, Hashable, CaseIterable {
        /// The seller's non-PII lead fields.
        case lead
        /// The seller's contact (PII): posts only.
        case contact
        /// Calls: `area_code`, `state`, `zip`, `hash` of the caller.
        case caller
        /// The seller's consent: in pings only `trustedform_cert_url`, `jornaya_leadid`, `tcpa_consent`.
        case consent
        /// Values of the round: `auction_id`, `campaign`, `vertical`, `kind`, `tmax_ms`, `source`, `now`;
        /// posts also `price` and `bid_id`.
        case round
        /// Posts only: values kept from this buyer's own ping answer (`keep:` of the ping response).
        case ping
    }

    struct Reference: Sendable, Hashable {
        var source: Source
        /// Keys below the source; empty for the whole object (`{{lead}}`).
        var path: [String]
        var transforms: [ValueTransform]

        var name: String { ([source.rawValue] + path).joined(separator: ".") }
    }

    let parts: [Part]

    /// A constant (YAML numbers and booleans keep their type).
    public static func constant(_ value: JSONValue) -> ValueTemplate { ValueTemplate(parts: [], constant: value) }

    private let constant: JSONValue?

    private init(parts: [Part], constant: JSONValue? = nil) {
        self.parts = parts
        self.constant = constant
    }

    /// Round values a ping may use; posts add `postOnlyRoundKeys`.
    public static let pingRoundKeys: Set<String> = ["auction_id", "campaign", "vertical", "kind", "tmax_ms", "source", "now"]
    public static let postOnlyRoundKeys: Set<String> = ["price", "bid_id"]
    /// What a call ping knows of the caller (never the number).
    public static let callerKeys: Set<String> = ["area_code", "state", "zip", "hash"]

    /// Parses `text`. `maps` are the buyer's named value maps (`map:NAME`).
    public static func parse(_ text: String, maps: [String: [String: String]] = [:]) throws(TemplateProblem) -> ValueTemplate {
        var parts: [Part] = []
        var rest = Substring(text)
        while let open = rest.range(of: "{{") {
            if open.lowerBound > rest.startIndex { parts.append(.text(String(rest[..<open.lowerBound]))) }
            guard let close = rest[open.upperBound...].range(of: "}}") else {
                throw TemplateProblem("", "unterminated {{ in \"\(text)\"")
            }
            parts.append(.reference(try reference(String(rest[open.upperBound..<close.lowerBound]), maps: maps)))
            rest = rest[close.upperBound...]
        }
        if !rest.isEmpty { parts.append(.text(String(rest))) }
        return ValueTemplate(parts: parts)
    }

    private static func reference(_ text: String, maps: [String: [String: String]]) throws(TemplateProblem) -> Reference {
        let pieces = text.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmed }
        let name = pieces[0]
        guard !name.isEmpty else { throw TemplateProblem("", "empty reference {{}}") }
        let keys = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard let source = Source(rawValue: keys[0]) else {
            throw TemplateProblem("", "unknown source \"\(keys[0])\" in {{\(text)}} (known: \(Source.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        guard !keys.dropFirst().contains(where: \.isEmpty) else { throw TemplateProblem("", "empty key in {{\(text)}}") }
        var transforms: [ValueTransform] = []
        for piece in pieces.dropFirst() {
            transforms.append(try ValueTransform.parse(piece, maps: maps))
        }
        return Reference(source: source, path: Array(keys.dropFirst()), transforms: transforms)
    }

    /// Every reference, for checks at load time.
    var references: [Reference] {
        parts.compactMap { if case .reference(let reference) = $0 { return reference } else { return nil } }
    }

    /// Whether the value has no references (a constant).
    public var isConstant: Bool { references.isEmpty }

    /// Why this value may not go where `allowed` says, or nil when it may. Checked when the config
    /// loads, so a template that could leak PII into a ping never runs.
    func problem(in use: TemplateUse, keptNames: Set<String>) -> String? {
        for reference in references {
            let key = reference.path.first
            switch reference.source {
            case .lead:
                if let key, BuyerProtocol.personalKeys.contains(key.lowercased()) {
                    return "{{\(reference.name)}} is personal data: lead fields never hold it (contact does, posts only)"
                }
            case .contact:
                if use == .ping { return "{{\(reference.name)}} is personal data: a ping may not carry contact fields" }
            case .caller:
                if use == .post { return "{{\(reference.name)}}: call buyers are not posted to; caller fields are for call pings" }
                if let key, !ValueTemplate.callerKeys.contains(key) {
                    return "{{\(reference.name)}}: a ping knows only caller.\(ValueTemplate.callerKeys.sorted().joined(separator: ", caller.")) (never the number)"
                }
            case .consent:
                if use == .ping, let key, !BuyerProtocol.pingConsentKeys.contains(key) {
                    return "{{\(reference.name)}} may identify the consumer: a ping may carry only consent.\(BuyerProtocol.pingConsentKeys.sorted().joined(separator: ", consent."))"
                }
            case .round:
                guard let key else { return "{{round}} needs a key (\(ValueTemplate.pingRoundKeys.union(ValueTemplate.postOnlyRoundKeys).sorted().joined(separator: ", ")))" }
                let allowed = use == .ping ? ValueTemplate.pingRoundKeys : ValueTemplate.pingRoundKeys.union(ValueTemplate.postOnlyRoundKeys)
                if !allowed.contains(key) {
                    let hint = ValueTemplate.postOnlyRoundKeys.contains(key) ? " (known in posts only)" : ""
                    return "unknown round value \"\(key)\"\(hint) (known: \(allowed.sorted().joined(separator: ", ")))"
                }
            case .ping:
                if use == .ping { return "{{\(reference.name)}}: values of the ping answer exist in posts only" }
                guard let key, reference.path.count == 1 else { return "{{ping.NAME}} needs one name kept by the ping response's keep:" }
                if !keptNames.contains(key) && key != "bid_id" {
                    return "{{ping.\(key)}} is not kept: add it to ping.response.keep (kept: \(keptNames.sorted().joined(separator: ", ")))"
                }
            }
        }
        return nil
    }

    /// The value for one request; nil when a lone reference has no value (the field is left out).
    func render(_ scope: RenderScope) -> JSONValue? {
        if let constant { return constant }
        if parts.count == 1, case .reference(let reference) = parts[0] { return scope.resolve(reference) }
        var text = ""
        for part in parts {
            switch part {
            case .text(let literal): text += literal
            case .reference(let reference): text += scope.resolve(reference).flatMap(\.templateText) ?? ""
            }
        }
        return .string(text)
    }

    /// The value as text (query parameters, headers, form fields, XML).
    func renderText(_ scope: RenderScope) -> String? { render(scope).flatMap(\.templateText) }
}

/// Where a template is used: what it may reference differs.
public enum TemplateUse: Sendable { case ping, post }

/// Everything a request's values may read.
struct RenderScope {
    var lead: JSONObject
    var contact: JSONObject?
    var caller: JSONObject?
    var consent: JSONObject?
    var kept: [String: String]
    // Round values, made into JSON only when a template asks for them.
    let auctionID: String
    let campaign: Campaign
    let tmaxMs: Int
    let source: String?
    let nowMs: Int64
    var price: Money?
    var bidID: String?

    init(ping input: PingInput) {
        lead = input.lead
        caller = input.caller
        consent = input.consent
        kept = [:]
        auctionID = input.auctionID
        campaign = input.campaign
        tmaxMs = input.tmaxMs
        source = input.source
        nowMs = input.nowMs
    }

    init(post input: PostInput) {
        lead = input.lead
        contact = input.contact
        consent = input.consent
        kept = input.kept
        if let bidID = input.bid.bidID, kept["bid_id"] == nil { kept["bid_id"] = bidID }
        auctionID = input.auctionID
        campaign = input.campaign
        tmaxMs = input.tmaxMs
        source = input.source
        nowMs = input.nowMs
        price = input.bid.price
        bidID = input.bid.bidID
    }

    func roundValue(_ key: String) -> JSONValue? {
        switch key {
        case "auction_id": return .string(auctionID)
        case "campaign": return .string(campaign.id)
        case "vertical": return .string(campaign.vertical)
        case "kind": return .string(campaign.kind.rawValue)
        case "tmax_ms": return .number(String(tmaxMs))
        case "now": return .string(DateText.rfc3339(unixMs: nowMs))
        case "source": return source.map(JSONValue.string)
        case "price": return price.map(JSONValue.init)
        case "bid_id": return bidID.map(JSONValue.string)
        default: return nil
        }
    }

    func resolve(_ reference: ValueTemplate.Reference) -> JSONValue? {
        var value: JSONValue?
        switch reference.source {
        case .lead: value = .object(lead)
        case .contact: value = contact.map(JSONValue.object)
        case .caller: value = caller.map(JSONValue.object)
        case .consent: value = consent.map(JSONValue.object)
        case .round: value = reference.path.first.flatMap(roundValue)
        case .ping: value = reference.path.first.flatMap { kept[$0] }.map(JSONValue.string)
        }
        if reference.source != .round && reference.source != .ping {
            for key in reference.path { value = value?[key] }
        }
        if case .null? = value { value = nil }
        for transform in reference.transforms { value = transform.apply(value) }
        return value
    }
}

extension JSONValue {
    /// The value as text in a form field, query, header or XML element; objects and arrays as JSON.
    var templateText: String? {
        switch self {
        case .null: return nil
        case .string(let text), .number(let text): return text
        case .bool(let bool): return bool ? "true" : "false"
        case .array, .object: return serialized
        }
    }
}

extension StringProtocol {
    var trimmed: String {
        var text = Substring(self)
        while let first = text.first, first.isWhitespace { text = text.dropFirst() }
        while let last = text.last, last.isWhitespace { text = text.dropLast() }
        return String(text)
    }
}
