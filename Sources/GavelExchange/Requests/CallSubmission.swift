import GavelCore

/// `POST /v1/calls`: a live call waiting for a destination.
///
///     {"campaign": "home-services", "caller": {"number": "+15551234567", "zip": "94107", "state": "CA"},
///      "dialed": "+18005550201", "tags": {"service": "plumbing"}, "tmax_ms": 500}
///
/// `campaign` may be left out when `dialed` is one of a campaign's tracking numbers.
public struct CallSubmission: Sendable {
    public var campaign: Campaign
    /// The caller's number in E.164: PII, kept out of pings.
    public var callerNumber: String
    public var state: String?
    public var zip: String?
    /// The tracking number dialed, E.164.
    public var dialed: String?
    /// Non-PII call fields, sent to buyers as the ping's `lead`.
    public var tags: JSONObject
    public var tmaxMs: Int

    /// A call from a telephony webhook; `callerNumber` empty when the caller withheld it.
    public init(campaign: Campaign, callerNumber: String, state: String? = nil, zip: String? = nil, dialed: String? = nil,
                tags: JSONObject = JSONObject(), tmaxMs: Int? = nil) {
        self.campaign = campaign
        self.callerNumber = callerNumber
        self.state = state
        self.zip = zip
        self.dialed = dialed
        self.tags = tags
        self.tmaxMs = tmaxMs ?? campaign.tmaxMs
    }

    public static func parse(_ body: [UInt8], seller: Seller, config: ExchangeConfig) throws(RequestError) -> CallSubmission {
        let object = try LeadSubmission.jsonObject(body)
        let allowed: Set<String> = ["campaign", "caller", "dialed", "tags", "tmax_ms"]
        for key in object.keys where !allowed.contains(key) {
            throw .invalid(key, "unknown field (allowed: \(allowed.sorted().joined(separator: ", ")))", code: "unknown_field")
        }
        var dialed: String?
        if let value = object["dialed"], !value.isNull {
            guard let text = value.stringValue, let number = PhoneNumber.e164(text) else {
                throw .invalid("dialed", "must be the phone number the caller dialed, such as +18005550201")
            }
            dialed = number
        }
        var fields = object
        if fields["campaign"] == nil, let dialed, let owner = config.campaignByTrackingNumber[dialed] {
            fields["campaign"] = .string(owner)
        }
        let campaign = try LeadSubmission.campaign(fields, seller: seller, config: config, kind: .call)

        guard let callerValue = object["caller"] else { throw .missing("caller") }
        guard let caller = callerValue.objectValue else { throw .invalid("caller", "must be an object with number, zip, state") }
        guard let numberValue = caller["number"] else { throw .missing("caller.number") }
        guard let text = numberValue.stringValue, let number = PhoneNumber.e164(text) else {
            throw .invalid("caller.number", "must be a phone number such as +15551234567")
        }
        for key in caller.keys where !["number", "zip", "state"].contains(key) {
            throw .invalid("caller.\(key)", "unknown field (allowed: number, state, zip)", code: "unknown_field")
        }
        var state: String?
        if let value = caller["state"], !value.isNull {
            guard let text = value.stringValue, text.count == 2, text.allSatisfy({ $0.isASCII && $0.isLetter }) else {
                throw .invalid("caller.state", "must be a two-letter state code such as CA")
            }
            state = text.uppercased()
        }
        var zip: String?
        if let value = caller["zip"], !value.isNull {
            guard let text = value.stringValue, text.count == 5, text.allSatisfy({ $0.isASCII && $0.isNumber }) else {
                throw .invalid("caller.zip", "must be a 5-digit zip code as a string, such as \"94107\"")
            }
            zip = text
        }
        var tags = JSONObject()
        if let value = object["tags"], !value.isNull {
            // Tags reach every buyer, so they follow the same no-PII rules as lead fields.
            tags = try LeadSubmission.leadFields(value, campaign: Campaign(id: "", vertical: ""), field: "tags")
        }
        return CallSubmission(
            campaign: campaign, callerNumber: number, state: state, zip: zip, dialed: dialed, tags: tags,
            tmaxMs: try LeadSubmission.tmaxMs(object["tmax_ms"], campaign: campaign)
        )
    }

    /// What buyers and the eligibility checks see: the tags plus the caller's coarse location.
    var eligibilityFields: JSONObject {
        var fields = tags
        if let state { fields["state"] = .string(state) }
        if let zip { fields["zip"] = .string(zip) }
        return fields
    }
}

/// `POST /v1/calls/{id}/events`: `{"type": "connected" | "failed" | "completed", "duration_s": 95, "recording_url": "..."}`.
public struct CallEvent: Sendable, Hashable {
    public enum Kind: String, Sendable, CaseIterable {
        case connected, failed, completed
        /// The caller hung up before a transfer connected.
        case hungUp = "hung_up"
    }
    public var kind: Kind
    public var durationS: Int?
    public var recordingURL: String?
    public var detail: String?

    public init(kind: Kind, durationS: Int? = nil, recordingURL: String? = nil, detail: String? = nil) {
        self.kind = kind
        self.durationS = durationS
        self.recordingURL = recordingURL
        self.detail = detail
    }

    public static func parse(_ body: [UInt8]) throws(RequestError) -> CallEvent {
        let object = try LeadSubmission.jsonObject(body)
        for key in object.keys where !["type", "duration_s", "recording_url", "reason"].contains(key) {
            throw .invalid(key, "unknown field (allowed: duration_s, reason, recording_url, type)", code: "unknown_field")
        }
        guard let typeValue = object["type"] else { throw .missing("type") }
        guard let text = typeValue.stringValue, let kind = Kind(rawValue: text) else {
            throw .invalid("type", "must be connected, failed, completed or hung_up")
        }
        var duration: Int?
        if let value = object["duration_s"], !value.isNull {
            guard let seconds = LeadSubmission.wholeNumber(value), seconds >= 0, seconds <= 86_400 else {
                throw .invalid("duration_s", "must be whole seconds from 0 to 86400")
            }
            duration = seconds
        }
        if kind == .completed, duration == nil { throw .missing("duration_s") }
        var recording: String?
        if let value = object["recording_url"], !value.isNull {
            guard let url = value.stringValue, url.hasPrefix("https://") || url.hasPrefix("http://"), url.count <= 2048 else {
                throw .invalid("recording_url", "must be an http(s) URL")
            }
            recording = url
        }
        return CallEvent(kind: kind, durationS: duration, recordingURL: recording, detail: object["reason"]?.stringValue)
    }
}
