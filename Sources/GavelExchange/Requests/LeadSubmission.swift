import GavelCore

/// A seller's lead request, checked field by field before anything runs or is recorded.
public struct LeadSubmission: Sendable {
    public var campaign: Campaign
    /// Non-PII fields: go into pings and the round record.
    public var lead: JSONObject
    /// PII: goes only into the winner's post and the PII table.
    public var contact: JSONObject?
    public var consent: JSONObject?
    public var tmaxMs: Int
    /// The seller's traffic source (a publisher, a sub-id), up to 100 characters: templates may
    /// send it to buyers (`{{round.source}}`) and reports group by it.
    public var source: String?

    public enum Shape: Sendable {
        /// `POST /v1/leads`: full lead with contact.
        case fullLead
        /// `POST /v1/pings`: no contact allowed.
        case pingOnly
    }

    /// Parses and validates `body` for `seller`. Every rejection names the field.
    public static func parse(_ body: [UInt8], shape: Shape, seller: Seller, config: ExchangeConfig) throws(RequestError) -> LeadSubmission {
        let object = try jsonObject(body)
        let allowed: Set<String> = shape == .fullLead ? ["campaign", "lead", "contact", "consent", "tmax_ms", "source"] : ["campaign", "lead", "consent", "tmax_ms", "source"]
        for key in object.keys where !allowed.contains(key) {
            if key == "contact" {
                throw .invalid("contact", "a ping carries no personal data: send contact with POST /v1/posts", code: "pii_in_ping")
            }
            throw .invalid(key, "unknown field (allowed: \(allowed.sorted().joined(separator: ", ")))", code: "unknown_field")
        }
        let campaign = try campaign(object, seller: seller, config: config, kind: .lead)
        let lead = try leadFields(object["lead"], campaign: campaign, field: "lead")
        var contact: JSONObject?
        if shape == .fullLead { contact = try contactFields(object["contact"], field: "contact") }
        let consent = try consentFields(object["consent"])
        let tmax = try tmaxMs(object["tmax_ms"], campaign: campaign)
        return LeadSubmission(campaign: campaign, lead: lead, contact: contact, consent: consent, tmaxMs: tmax, source: try source(object["source"]))
    }

    /// The request body as a JSON object, or a 400 saying why not.
    public static func jsonObject(_ body: [UInt8]) throws(RequestError) -> JSONObject {
        guard !body.isEmpty else { throw RequestError(status: 400, code: "invalid_json", message: "the request body is empty") }
        let value: JSONValue
        do { value = try JSONValue.parse(body) } catch {
            throw RequestError(status: 400, code: "invalid_json", message: error.description)
        }
        guard let object = value.objectValue else {
            throw RequestError(status: 400, code: "invalid_json", message: "the request body must be a JSON object")
        }
        return object
    }

    static func source(_ value: JSONValue?) throws(RequestError) -> String? {
        guard let value, !value.isNull else { return nil }
        guard let text = value.stringValue, (1...100).contains(text.unicodeScalars.count),
              text.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) else {
            throw .invalid("source", "must be text of 1 to 100 printable characters")
        }
        return text
    }

    static func campaign(_ object: JSONObject, seller: Seller, config: ExchangeConfig, kind: AuctionKind) throws(RequestError) -> Campaign {
        guard let value = object["campaign"] else { throw .missing("campaign") }
        guard let id = value.stringValue else { throw .invalid("campaign", "must be a string") }
        guard let campaign = config.campaigns[id] else {
            throw .invalid("campaign", "unknown campaign \"\(id)\"", code: "unknown_campaign")
        }
        guard seller.campaigns.contains(id) else {
            throw RequestError(status: 403, code: "campaign_not_allowed", message: "seller \(seller.id) may not sell into \(id)", field: "campaign")
        }
        guard campaign.kind == kind else {
            throw .invalid("campaign", "campaign \(id) is a \(campaign.kind.rawValue) campaign; use the \(campaign.kind.rawValue) endpoint", code: "wrong_kind")
        }
        return campaign
    }

    static func leadFields(_ value: JSONValue?, campaign: Campaign, field: String) throws(RequestError) -> JSONObject {
        guard let value else { throw .missing(field) }
        guard let lead = value.objectValue else { throw .invalid(field, "must be an object of lead fields") }
        for (key, fieldValue) in lead {
            let path = "\(field).\(key)"
            if BuyerProtocol.personalKeys.contains(key.lowercased()) {
                throw .invalid(path, "personal data belongs in contact, never in lead (lead fields are sent to every buyer)", code: "pii_in_lead")
            }
            switch fieldValue {
            case .string, .number, .bool, .null: break
            case .array(let items) where items.allSatisfy({ if case .object = $0 { return false }; if case .array = $0 { return false }; return true }): break
            default: throw .invalid(path, "must be a string, number, boolean or a list of them")
            }
        }
        for required in campaign.requiredFields where lead[required] == nil || lead[required]?.isNull == true {
            throw .missing("\(field).\(required)")
        }
        if let state = lead["state"], !state.isNull {
            guard let text = state.stringValue, text.count == 2, text.allSatisfy({ $0.isASCII && $0.isLetter }) else {
                throw .invalid("\(field).state", "must be a two-letter state code such as CA")
            }
        }
        if let zip = lead["zip"], !zip.isNull {
            guard let text = zip.stringValue, text.count == 5, text.allSatisfy({ $0.isASCII && $0.isNumber }) else {
                throw .invalid("\(field).zip", "must be a 5-digit zip code as a string, such as \"94107\"")
            }
        }
        var normalized = lead
        if let state = lead["state"]?.stringValue { normalized["state"] = .string(state.uppercased()) }
        return normalized
    }

    /// A contact object: an email or a phone, each well-formed; only strings.
    public static func contactFields(_ value: JSONValue?, field: String) throws(RequestError) -> JSONObject {
        guard let value else { throw .missing(field) }
        guard let contact = value.objectValue else { throw .invalid(field, "must be an object of contact fields") }
        let email = contact["email"]?.stringValue
        let phone = contact["phone"]?.stringValue
        guard email != nil || phone != nil else {
            throw .invalid(field, "needs an email or a phone so the buyer can reach the consumer", code: "missing_field")
        }
        if let email {
            let parts = email.split(separator: "@", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, parts[1].contains("."), !parts[1].hasSuffix("."), !email.contains(" ") else {
                throw .invalid("\(field).email", "must be an email address such as jo@example.com")
            }
        }
        if let phone {
            let digits = phone.filter { $0.isASCII && $0.isNumber }
            guard (10...15).contains(digits.count), phone.allSatisfy({ ($0.isASCII && $0.isNumber) || "+-() .".contains($0) }) else {
                throw .invalid("\(field).phone", "must be a phone number with 10 to 15 digits, such as +15551234567")
            }
        }
        for (key, fieldValue) in contact {
            switch fieldValue {
            case .string, .null: break
            default: throw .invalid("\(field).\(key)", "must be a string")
            }
        }
        return contact
    }

    /// The seller's consent evidence. Only `BuyerProtocol.pingConsentKeys` go into pings; the whole
    /// object is kept with the contact and sent in the winner's post.
    static func consentFields(_ value: JSONValue?) throws(RequestError) -> JSONObject? {
        guard let value, !value.isNull else { return nil }
        guard let consent = value.objectValue else { throw .invalid("consent", "must be an object") }
        if let url = consent["trustedform_cert_url"], !url.isNull {
            guard let text = url.stringValue, text.hasPrefix("https://"), text.unicodeScalars.count <= 2048 else {
                throw .invalid("consent.trustedform_cert_url", "must be an https:// certificate URL")
            }
        }
        if let lead = consent["jornaya_leadid"], !lead.isNull {
            guard let text = lead.stringValue, !text.isEmpty, text.unicodeScalars.count <= 128 else {
                throw .invalid("consent.jornaya_leadid", "must be the Jornaya LeadiD token, a string of 1 to 128 characters")
            }
        }
        if let tcpa = consent["tcpa_consent"], !tcpa.isNull {
            guard case .bool = tcpa else { throw .invalid("consent.tcpa_consent", "must be true or false") }
        }
        for (key, field) in consent {
            switch field {
            case .string, .number, .bool, .null: continue
            default: throw .invalid("consent.\(key)", "must be a string, number or boolean")
            }
        }
        return consent
    }

    static func tmaxMs(_ value: JSONValue?, campaign: Campaign) throws(RequestError) -> Int {
        guard let value, !value.isNull else { return campaign.tmaxMs }
        guard let tmax = wholeNumber(value) else {
            throw .invalid("tmax_ms", "must be a whole number of milliseconds")
        }
        guard (20...60_000).contains(tmax) else { throw .invalid("tmax_ms", "must be between 20 and 60000") }
        return tmax
    }
}

// The server's `/v1/posts` parsing shares these field rules.
extension LeadSubmission {
    /// A JSON number that is a whole number: `800`, `800.0` and `8e2` are the same integer (as JSON
    /// Schema has it); `0.5`, `1e400` and strings are not.
    public static func wholeNumber(_ value: JSONValue) -> Int? {
        guard case .number(let text) = value else { return nil }
        if let whole = Int(text) { return whole }
        guard let number = Double(text), number.rounded() == number, abs(number) <= 9_007_199_254_740_992 else { return nil }
        return Int(number)
    }

    /// A post's lead: the same rules as a ping's, without a campaign's required fields (the ping had them).
    public static func leadFieldsForPost(_ value: JSONValue) throws(RequestError) -> JSONObject {
        try leadFields(value, campaign: Campaign(id: "", vertical: ""), field: "lead")
    }

}
