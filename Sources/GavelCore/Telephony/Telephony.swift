/// A call campaign's phone lines: how callers reach it through a telephony provider's voice
/// webhooks, and what they hear when no buyer takes them.
public struct CampaignPhoneLines: Sendable, Hashable {
    /// Number (E.164) -> the seller paid for calls to it (`inbound_numbers`).
    public var inboundNumbers: [String: String]
    /// The seller paid for calls to the campaign's tracking numbers (`tracking.seller`).
    public var trackingSeller: String?
    /// Dialled, with no callback into routing, when no buyer takes the call.
    public var fallbackNumber: String?
    /// Said before hanging up when there is no buyer and no fallback number.
    public var noBuyerMessage: String
    /// Seconds a buyer's line may ring (`<Dial timeout>`).
    public var dialTimeoutS: Int
    /// The caller id shown to buyers; nil passes the caller's own number through.
    public var callerID: String?
    /// Record the bridged call from when the buyer answers.
    public var record: Bool

    public static let defaultNoBuyerMessage = "Sorry, no one is available to take your call right now. Please try again later. Goodbye."

    public init(inboundNumbers: [String: String] = [:], trackingSeller: String? = nil, fallbackNumber: String? = nil,
                noBuyerMessage: String = CampaignPhoneLines.defaultNoBuyerMessage, dialTimeoutS: Int = 20, callerID: String? = nil,
                record: Bool = false) {
        self.inboundNumbers = inboundNumbers
        self.trackingSeller = trackingSeller
        self.fallbackNumber = fallbackNumber
        self.noBuyerMessage = noBuyerMessage
        self.dialTimeoutS = dialTimeoutS
        self.callerID = callerID
        self.record = record
    }
}

/// `telephony.yaml`: the provider accounts whose webhooks Gavel takes.
public struct TelephonySettings: Sendable, Hashable {
    /// `AccountSid` -> auth token: every webhook is verified with its account's token.
    public var twilioAccounts: [String: String]
    /// The URL the provider calls Gavel at (behind a proxy, its public address), without a trailing
    /// slash: the signed URL is this plus path and query; nil uses the request's scheme and `Host`.
    public var publicBaseURL: String?

    public init(twilioAccounts: [String: String] = [:], publicBaseURL: String? = nil) {
        self.twilioAccounts = twilioAccounts
        self.publicBaseURL = publicBaseURL
    }
}

/// Where a dialled number leads: the campaign and the seller paid for the call.
public struct PhoneLine: Sendable, Hashable {
    public var campaignID: String
    public var sellerID: String?

    public init(campaignID: String, sellerID: String?) {
        self.campaignID = campaignID
        self.sellerID = sellerID
    }
}
