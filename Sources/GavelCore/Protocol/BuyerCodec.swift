/// How one buyer's requests are written and its answers read: Gavel's native JSON
/// (`NativeBuyerCodec`) or a config template (`TemplateBuyerCodec` in GavelIntegration).
///
/// A codec is built once per config snapshot, per buyer, and shared by every round that runs on
/// that snapshot: a round only renders values into what the codec prepared.
public protocol BuyerCodec: Sendable {
    /// The request for one ping. PII never reaches here: `input` holds only what a ping may carry.
    func pingRequest(_ input: PingInput, endpoint: Endpoint) -> BuyerRequest
    /// The ping's HTTP answer, interpreted; every number bounded by `BidLimits` and `maxBid`.
    func parsePing(status: Int, body: [UInt8], maxBid: Money) -> BidAnswer
    /// The request for the winner's post: the full record.
    func postRequest(_ input: PostInput, endpoint: Endpoint) -> BuyerRequest
    /// The post's HTTP answer, interpreted: only an explicit acceptance sells.
    func parsePost(status: Int, body: [UInt8]) -> PostAnswer
    /// A short name for logs and `gavel try-buyer` (`native`, `template`).
    var name: String { get }
}

/// A request to a buyer, before transport and signing.
public struct BuyerRequest: Sendable, Hashable {
    public enum Method: String, Sendable, Hashable, CaseIterable { case get = "GET", post = "POST" }

    public var method: Method
    /// The full URL, query included.
    public var url: String
    /// In the order they are sent; `Content-Type` first when there is a body.
    public var headers: [Header]
    public var body: [UInt8]

    public struct Header: Sendable, Hashable {
        public var name: String
        public var value: String
        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    public init(method: Method = .post, url: String, headers: [Header] = [], body: [UInt8] = []) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
    }

    /// The path and query of `url` (`/ping?key=1`), the text a GET's signature covers.
    public var pathAndQuery: String {
        guard let scheme = url.range(of: "://") else { return url }
        let afterScheme = url[scheme.upperBound...]
        guard let slash = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" }) else { return "/" }
        let rest = afterScheme[slash...]
        let withoutFragment = rest.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? rest
        return withoutFragment.hasPrefix("?") ? "/" + withoutFragment : String(withoutFragment)
    }
}

/// What a ping may carry: never PII.
public struct PingInput: Sendable {
    public var auctionID: String
    public var campaign: Campaign
    /// Non-PII lead fields.
    public var lead: JSONObject
    /// Calls: `area_code`, `state`, `zip`, `hash` of the caller; never the number.
    public var caller: JSONObject?
    /// Only the ping-safe keys (`BuyerProtocol.pingConsentKeys`).
    public var consent: JSONObject?
    /// The seller's traffic source, when it sent one.
    public var source: String?
    /// The milliseconds this buyer really has.
    public var tmaxMs: Int
    /// Round time for date values (`round.now`), ms since the epoch.
    public var nowMs: Int64
    /// The native body with everything but `tmax_ms`, serialised once per round for all native buyers.
    public var nativeTemplate: BuyerProtocol.PingTemplate?

    public init(auctionID: String, campaign: Campaign, lead: JSONObject, caller: JSONObject? = nil, consent: JSONObject? = nil,
                source: String? = nil, tmaxMs: Int, nowMs: Int64 = 0, nativeTemplate: BuyerProtocol.PingTemplate? = nil) {
        self.auctionID = auctionID
        self.campaign = campaign
        self.lead = lead
        self.caller = caller
        self.consent = BuyerProtocol.pingSafeConsent(consent)
        self.source = source
        self.tmaxMs = tmaxMs
        self.nowMs = nowMs
        self.nativeTemplate = nativeTemplate
    }
}

/// What the winner's post carries: the full record.
public struct PostInput: Sendable {
    public var auctionID: String
    public var campaign: Campaign
    public var bid: RankedBid
    public var lead: JSONObject
    public var contact: JSONObject
    /// All of the seller's consent object.
    public var consent: JSONObject?
    public var source: String?
    /// Values the buyer's ping answer gave that its post must return (`keep:`), such as a lead id.
    public var kept: [String: String]
    public var tmaxMs: Int
    public var nowMs: Int64

    public init(auctionID: String, campaign: Campaign, bid: RankedBid, lead: JSONObject, contact: JSONObject,
                consent: JSONObject? = nil, source: String? = nil, kept: [String: String] = [:], tmaxMs: Int = 0, nowMs: Int64 = 0) {
        self.auctionID = auctionID
        self.campaign = campaign
        self.bid = bid
        self.lead = lead
        self.contact = contact
        self.consent = consent
        self.source = source
        self.kept = kept
        self.tmaxMs = tmaxMs
        self.nowMs = nowMs
    }
}

/// The buyer's own words when it declines or rejects, and the category config maps them to.
public struct BuyerReason: Sendable, Hashable, Codable {
    public var code: String
    public var category: String?

    public init(code: String, category: String? = nil) {
        self.code = String(code.prefix(256))
        self.category = category
    }
}

/// A ping answer, interpreted.
public struct BidAnswer: Sendable, Hashable {
    public var answer: AuctionRound.PingAnswer
    public var buyerReason: BuyerReason?
    /// Values kept from the answer for the post (`keep:`).
    public var kept: [String: String]

    public init(_ answer: AuctionRound.PingAnswer, buyerReason: BuyerReason? = nil, kept: [String: String] = [:]) {
        self.answer = answer
        self.buyerReason = buyerReason
        self.kept = kept
    }
}

/// A post answer, interpreted.
public struct PostAnswer: Sendable, Hashable {
    public var result: AuctionRound.PostResult
    public var buyerReason: BuyerReason?

    public init(_ result: AuctionRound.PostResult, buyerReason: BuyerReason? = nil) {
        self.result = result
        self.buyerReason = buyerReason
    }
}

/// Gavel's own JSON protocol (CONTRACT "Buyer protocol"), with the optional response paths of a
/// buyer's `response:` mapping.
public struct NativeBuyerCodec: BuyerCodec, Hashable {
    public var mapping: ResponseMapping

    public init(mapping: ResponseMapping = ResponseMapping()) { self.mapping = mapping }

    public var name: String { "native" }

    public func pingRequest(_ input: PingInput, endpoint: Endpoint) -> BuyerRequest {
        let template = input.nativeTemplate ?? BuyerProtocol.PingTemplate(
            auctionID: input.auctionID, campaign: input.campaign, lead: input.lead, caller: input.caller, consent: input.consent)
        return NativeBuyerCodec.jsonRequest(url: endpoint.url, body: template.body(tmaxMs: input.tmaxMs), headers: endpoint.headers)
    }

    public func parsePing(status: Int, body: [UInt8], maxBid: Money) -> BidAnswer {
        let answer = BuyerProtocol.parseBid(status: status, body: body, mapping: mapping, maxBid: maxBid)
        var reason: BuyerReason?
        if case .noBid = answer, let json = try? JSONValue.parse(body),
           let text = BuyerProtocol.value(at: mapping.reasonPath, in: json).flatMap(BuyerProtocol.scalarText) {
            reason = BuyerReason(code: text)
        }
        return BidAnswer(answer, buyerReason: reason)
    }

    public func postRequest(_ input: PostInput, endpoint: Endpoint) -> BuyerRequest {
        let body = BuyerProtocol.postBody(auctionID: input.auctionID, bid: input.bid, lead: input.lead, contact: input.contact, consent: input.consent)
        return NativeBuyerCodec.jsonRequest(url: endpoint.url, body: body, headers: endpoint.headers)
    }

    public func parsePost(status: Int, body: [UInt8]) -> PostAnswer {
        let result = BuyerProtocol.parsePost(status: status, body: body, mapping: mapping)
        if case .rejected(let reason?) = result { return PostAnswer(result, buyerReason: BuyerReason(code: reason)) }
        return PostAnswer(result)
    }

    /// A JSON POST with the endpoint's headers, sorted by name.
    public static func jsonRequest(url: String, body: String, headers: [String: String]) -> BuyerRequest {
        var all = [BuyerRequest.Header("Content-Type", "application/json")]
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) { all.append(.init(name, value)) }
        return BuyerRequest(method: .post, url: url, headers: all, body: Array(body.utf8))
    }
}

/// A buyer's codec with equality by what built it, so `Buyer` stays a comparable value.
public struct AnyBuyerCodec: Sendable, Hashable {
    public let codec: any BuyerCodec
    /// What the codec was built from (the native mapping, or the template's canonical text).
    private let identity: String

    public init(_ codec: any BuyerCodec, identity: String) {
        self.codec = codec
        self.identity = identity
    }

    public static func native(_ mapping: ResponseMapping = ResponseMapping()) -> AnyBuyerCodec {
        AnyBuyerCodec(NativeBuyerCodec(mapping: mapping), identity: "native:\(mapping)")
    }

    /// Whether this is the native codec (its mapping follows the buyer's `response`).
    public var isNative: Bool { codec is NativeBuyerCodec }

    public static func == (lhs: AnyBuyerCodec, rhs: AnyBuyerCodec) -> Bool { lhs.identity == rhs.identity }
    public func hash(into hasher: inout Hasher) { hasher.combine(identity) }
}
