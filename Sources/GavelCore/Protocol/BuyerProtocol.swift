/// The native JSON buyer protocol (CONTRACT "Buyer protocol"): request bodies out, answers in.
public enum BuyerProtocol {
    /// Keys that are personal data: they may arrive only in a request's `contact` and go only
    /// into posts, never into pings, logs or the non-PII lead record.
    public static let personalKeys: Set<String> = [
        "first_name", "last_name", "name", "full_name", "email", "phone", "phone_number", "mobile",
        "address", "address1", "address2", "street", "street_address", "ssn", "dob", "date_of_birth",
        "ip", "ip_address", "number",
    ]

    /// The only `consent` keys that may go into pings (CONTRACT v2): certificates a buyer checks
    /// before bidding. Everything else in `consent` (an email, a signer's name) is personal data and
    /// goes only into the winner's post.
    public static let pingConsentKeys: Set<String> = ["trustedform_cert_url", "jornaya_leadid", "tcpa_consent"]

    /// The part of a seller's `consent` that may be pinged; nil when nothing of it may.
    public static func pingSafeConsent(_ consent: JSONObject?) -> JSONObject? {
        guard let consent else { return nil }
        var safe = JSONObject()
        for (key, value) in consent where pingConsentKeys.contains(key) { safe[key] = value }
        return safe.isEmpty ? nil : safe
    }

    /// A round's ping body, serialised once; only `tmax_ms` differs between buyers.
    public struct PingTemplate: Sendable {
        private let prefix: String

        public init(auctionID: String, campaign: Campaign, lead: JSONObject, caller: JSONObject? = nil, consent: JSONObject? = nil) {
            var body = JSONObject()
            body["auction_id"] = .string(auctionID)
            body["campaign"] = .string(campaign.id)
            body["vertical"] = .string(campaign.vertical)
            body["kind"] = .string(campaign.kind.rawValue)
            body["lead"] = .object(lead)
            if let caller { body["caller"] = .object(caller) }
            // The consent certificate lets a buyer verify consent before bidding; the rest of consent stays out.
            if let consent = BuyerProtocol.pingSafeConsent(consent) { body["consent"] = .object(consent) }
            let text = JSONValue.object(body).serialized
            prefix = String(text.dropLast()) + ",\"tmax_ms\":"
        }

        public func body(tmaxMs: Int) -> String { prefix + String(tmaxMs) + "}" }
    }

    /// The ping body: no PII ever.
    public static func pingBody(
        auctionID: String, campaign: Campaign, lead: JSONObject, caller: JSONObject? = nil, tmaxMs: Int
    ) -> String {
        PingTemplate(auctionID: auctionID, campaign: campaign, lead: lead, caller: caller).body(tmaxMs: tmaxMs)
    }

    /// The post body: the full record, to the winner only.
    public static func postBody(
        auctionID: String, bid: RankedBid, lead: JSONObject, contact: JSONObject, consent: JSONObject? = nil
    ) -> String {
        var body = JSONObject()
        body["auction_id"] = .string(auctionID)
        body["bid_id"] = bid.bidID.map(JSONValue.string) ?? .null
        body["price"] = JSONValue(bid.price)
        body["lead"] = .object(lead)
        body["contact"] = .object(contact)
        if let consent { body["consent"] = .object(consent) }
        return JSONValue.object(body).serialized
    }

    /// Interprets a ping's HTTP answer. Transport failures are mapped by the caller. Every number
    /// is bounded (`BidLimits`, the campaign's `maxBid`): an answer out of bounds is `bad_response`.
    public static func parseBid(
        status: Int, body: [UInt8], mapping: ResponseMapping = ResponseMapping(), maxBid: Money = Campaign.defaultMaxBid
    ) -> AuctionRound.PingAnswer {
        if status == 204 { return .noBid }
        guard (200..<300).contains(status) else { return .failed(.httpError, detail: "HTTP \(status)") }
        guard !body.isEmpty else { return .noBid }
        let json: JSONValue
        do { json = try JSONValue.parse(body) } catch { return .failed(.badResponse, detail: error.description) }
        guard json.objectValue != nil else { return .failed(.badResponse, detail: "answer is not a JSON object") }
        guard let bidValue = value(at: mapping.bidPath, in: json), !bidValue.isNull else { return .noBid }
        guard let text = bidValue.numberText, let price = Money(decimal: text.trimmingSpaces()) else {
            return .failed(.badResponse, detail: "bid is not a positive amount with at most 4 decimals")
        }
        if price == .zero { return .noBid }
        guard price <= maxBid else { return .failed(.badResponse, detail: "bid \(price) is above the campaign's max_bid \(maxBid)") }
        let bidID = value(at: mapping.bidIDPath, in: json).flatMap(scalarText)
        let expires: Int?
        let minDuration: Int?
        switch BidLimits.integer(value(at: mapping.expiresInPath, in: json), named: "expires_in_s", in: BidLimits.expiresInS) {
        case .success(let seconds): expires = seconds
        case .failure(let problem): return .failed(.badResponse, detail: problem.detail)
        }
        switch BidLimits.integer(json["min_duration_s"], named: "min_duration_s", in: BidLimits.minDurationS) {
        case .success(let seconds): minDuration = seconds
        case .failure(let problem): return .failed(.badResponse, detail: problem.detail)
        }
        let destination = json["destination"].flatMap(scalarText)
        return .bid(price: price, bidID: bidID.map { String($0.prefix(256)) }, expiresInS: expires,
                    destination: destination.map { String($0.prefix(256)) }, minDurationS: minDuration)
    }

    /// Interprets a post's HTTP answer: only an explicit acceptance sells.
    public static func parsePost(status: Int, body: [UInt8], mapping: ResponseMapping = ResponseMapping()) -> AuctionRound.PostResult {
        guard (200..<300).contains(status) else { return .failed(detail: "HTTP \(status)") }
        let json: JSONValue
        do { json = try JSONValue.parse(body) } catch { return .failed(detail: error.description) }
        guard let accepted = value(at: mapping.acceptedPath, in: json).flatMap(scalarText) else {
            return .failed(detail: "answer has no \(mapping.acceptedPath.joined(separator: "."))")
        }
        if mapping.acceptedValues.contains(accepted) {
            return .accepted(reference: value(at: mapping.referencePath, in: json).flatMap(scalarText))
        }
        return .rejected(reason: value(at: mapping.reasonPath, in: json).flatMap(scalarText))
    }

    static func value(at path: [String], in json: JSONValue) -> JSONValue? {
        var current: JSONValue? = json
        for key in path { current = current?[key] }
        return current
    }

    static func scalarText(_ value: JSONValue) -> String? {
        switch value {
        case .string(let text), .number(let text): return text
        case .bool(let bool): return bool ? "true" : "false"
        default: return nil
        }
    }
}

extension String {
    func trimmingSpaces() -> Substring {
        var text = Substring(self)
        while text.first == " " { text = text.dropFirst() }
        while text.last == " " { text = text.dropLast() }
        return text
    }
}
