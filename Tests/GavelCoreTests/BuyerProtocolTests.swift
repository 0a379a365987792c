import Testing
@testable import GavelCore

struct BuyerProtocolTests {
    let campaign = Campaign(id: "autos", vertical: "auto_insurance")
    let lead: JSONObject = JSONObject(["zip": "94107", "state": "CA", "age": 42, "homeowner": true])
    let contact: JSONObject = JSONObject(["email": "jo@example.com", "phone": "+15551234567", "first_name": "Jo"])

    func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// Every key anywhere in a JSON document.
    func allKeys(_ value: JSONValue) -> [String] {
        switch value {
        case .object(let object): return object.flatMap { [$0.key] + allKeys($0.value) }
        case .array(let array): return array.flatMap(allKeys)
        default: return []
        }
    }

    // MARK: Ping bodies

    @Test func pingBodyShape() throws {
        let body = BuyerProtocol.pingBody(auctionID: "r_1", campaign: campaign, lead: lead, tmaxMs: 250)
        #expect(body == #"{"auction_id":"r_1","campaign":"autos","vertical":"auto_insurance","kind":"lead","lead":{"zip":"94107","state":"CA","age":42,"homeowner":true},"tmax_ms":250}"#)
        let json = try JSONValue.parse(body)
        #expect(json["tmax_ms"] == .number("250"))
        #expect(json["lead"]?.objectValue == lead)
    }

    @Test func pingBodyNeverCarriesContact() throws {
        let caller: JSONObject = JSONObject(["area_code": "415"])
        let body = BuyerProtocol.pingBody(auctionID: "r_2", campaign: campaign, lead: lead, caller: caller, tmaxMs: 100)
        let json = try JSONValue.parse(body)
        let keys = allKeys(json)
        #expect(!keys.contains("contact"))
        #expect(keys.allSatisfy { !BuyerProtocol.personalKeys.contains($0) })
        for case let (_, .string(value)) in contact { #expect(!body.contains(value)) }
        #expect(json["caller"]?["area_code"] == .string("415"))
        #expect(json["tmax_ms"] == .number("100"))
    }

    @Test func pingTemplateMatchesPingBodyAndOnlyTmaxDiffers() throws {
        let template = BuyerProtocol.PingTemplate(auctionID: "r_3", campaign: campaign, lead: lead)
        #expect(template.body(tmaxMs: 321) == BuyerProtocol.pingBody(auctionID: "r_3", campaign: campaign, lead: lead, tmaxMs: 321))
        let one = try JSONValue.parse(template.body(tmaxMs: 1))
        let two = try JSONValue.parse(template.body(tmaxMs: 999))
        #expect(one["tmax_ms"] == .number("1"))
        #expect(two["tmax_ms"] == .number("999"))
        var withoutTmax = one.objectValue!
        withoutTmax["tmax_ms"] = nil
        var otherWithoutTmax = two.objectValue!
        otherWithoutTmax["tmax_ms"] = nil
        #expect(withoutTmax == otherWithoutTmax)
    }

    @Test func pingTemplateWithConsentAndCallerIsValidJSONWithoutPII() throws {
        let consent: JSONObject = JSONObject(["trustedform_cert_url": "https://cert.trustedform.com/abc"])
        let caller: JSONObject = JSONObject(["area_code": "212"])
        let template = BuyerProtocol.PingTemplate(auctionID: "r_4", campaign: campaign, lead: lead, caller: caller, consent: consent)
        let body = template.body(tmaxMs: 450)
        let json = try JSONValue.parse(body)
        #expect(json.objectValue?.keys == ["auction_id", "campaign", "vertical", "kind", "lead", "caller", "consent", "tmax_ms"])
        #expect(json["tmax_ms"] == .number("450"))
        #expect(json["consent"]?["trustedform_cert_url"] == .string("https://cert.trustedform.com/abc"))
        #expect(allKeys(json).allSatisfy { !BuyerProtocol.personalKeys.contains($0) })
        #expect(!body.contains("jo@example.com"))
    }

    @Test func postBodyCarriesContactAndPrice() throws {
        let bid = RankedBid(buyerID: "b1", price: Money(decimal: "18.5")!, bidID: "bid-7")
        let body = BuyerProtocol.postBody(auctionID: "r_5", bid: bid, lead: lead, contact: contact)
        let json = try JSONValue.parse(body)
        #expect(json["price"] == .number("18.5"))
        #expect(json["bid_id"] == .string("bid-7"))
        #expect(json["contact"]?["email"] == .string("jo@example.com"))
        #expect(json["consent"] == nil)
        let noID = BuyerProtocol.postBody(auctionID: "r_5", bid: RankedBid(buyerID: "b1", price: Money(3)), lead: lead, contact: contact)
        #expect(try JSONValue.parse(noID)["bid_id"] == .null)
    }

    @Test func personalKeys() {
        for key in ["email", "phone", "first_name", "last_name", "address", "ssn", "dob", "ip_address"] {
            #expect(BuyerProtocol.personalKeys.contains(key))
        }
        for key in ["zip", "state", "age", "tort", "homeowner"] { #expect(!BuyerProtocol.personalKeys.contains(key)) }
    }

    // MARK: Bids

    @Test func noContentIsNoBid() {
        #expect(BuyerProtocol.parseBid(status: 204, body: []) == .noBid)
        #expect(BuyerProtocol.parseBid(status: 204, body: bytes("garbage")) == .noBid)
        #expect(BuyerProtocol.parseBid(status: 200, body: []) == .noBid)
    }

    @Test(arguments: [#"{"bid":0}"#, #"{"bid":null}"#, #"{"bid":"0.00"}"#, #"{}"#, #"{"other":5}"#, #"{"bid":0.0000}"#])
    func zeroNullOrMissingBidIsNoBid(_ text: String) {
        #expect(BuyerProtocol.parseBid(status: 200, body: bytes(text)) == .noBid)
    }

    @Test func numericBid() {
        let answer = BuyerProtocol.parseBid(status: 200, body: bytes(#"{"bid":12.5,"bid_id":"x-1","expires_in_s":30}"#))
        #expect(answer == .bid(price: Money(decimal: "12.5")!, bidID: "x-1", expiresInS: 30, destination: nil, minDurationS: nil))
    }

    @Test func stringBid() {
        #expect(BuyerProtocol.parseBid(status: 200, body: bytes(#"{"bid":"12.50"}"#))
                == .bid(price: Money(units: 125_000), bidID: nil, expiresInS: nil, destination: nil, minDurationS: nil))
        #expect(BuyerProtocol.parseBid(status: 201, body: bytes(#"{"bid":" 7 "}"#))
                == .bid(price: Money(7), bidID: nil, expiresInS: nil, destination: nil, minDurationS: nil))
    }

    @Test func numericBidIDAndCallFields() {
        let answer = BuyerProtocol.parseBid(status: 200, body: bytes(
            #"{"bid":40,"bid_id":77,"destination":"+18005550101","min_duration_s":90,"expires_in_s":"15"}"#))
        #expect(answer == .bid(price: Money(40), bidID: "77", expiresInS: 15, destination: "+18005550101", minDurationS: 90))
    }

    @Test func unreadableExpiryIsBadResponse() {
        // CONTRACT v2: an expiry that is not a whole number makes the whole answer bad_response.
        let answer = BuyerProtocol.parseBid(status: 200, body: bytes(#"{"bid":5,"expires_in_s":"soon"}"#))
        #expect(answer == .failed(.badResponse, detail: "expires_in_s must be a whole number, got soon"))
    }

    @Test(arguments: [
        "not json", "[1,2]", #""12""#, "12", #"{"bid":"twelve"}"#, #"{"bid":true}"#, #"{"bid":[12]}"#, #"{"bid":-5}"#,
        #"{"bid":1e2}"#, #"{"bid":12.34567}"#, #"{"bid":"12.34567"}"#, #"{"bid":{"amount":3}}"#, #"{"bid":5} trailing"#, "   ",
    ])
    func garbageIsBadResponse(_ text: String) {
        guard case .failed(let reason, let detail) = BuyerProtocol.parseBid(status: 200, body: bytes(text)) else {
            Issue.record("\(text) was not a failure")
            return
        }
        #expect(reason == .badResponse)
        #expect(!detail.isEmpty)
    }

    @Test func tooManyDecimalsIsBadResponse() {
        #expect(BuyerProtocol.parseBid(status: 200, body: bytes(#"{"bid":1.00001}"#))
                == .failed(.badResponse, detail: "bid is not a positive amount with at most 4 decimals"))
    }

    @Test(arguments: [500, 404, 302, 199, 100, 403, 503])
    func nonSuccessStatusIsHTTPError(_ status: Int) {
        #expect(BuyerProtocol.parseBid(status: status, body: bytes(#"{"bid":12}"#)) == .failed(.httpError, detail: "HTTP \(status)"))
    }

    @Test func customResponseMapping() {
        let mapping = ResponseMapping(bidPath: ["result", "price"], bidIDPath: ["result", "id"], expiresInPath: ["ttl"])
        let answer = BuyerProtocol.parseBid(status: 200, body: bytes(#"{"result":{"price":"22.25","id":"abc"},"ttl":9,"bid":99}"#),
                                            mapping: mapping)
        #expect(answer == .bid(price: Money(decimal: "22.25")!, bidID: "abc", expiresInS: 9, destination: nil, minDurationS: nil))
        // With the custom mapping, the native `bid` key means nothing.
        #expect(BuyerProtocol.parseBid(status: 200, body: bytes(#"{"bid":99}"#), mapping: mapping) == .noBid)
        #expect(BuyerProtocol.parseBid(status: 200, body: bytes(#"{"result":{"price":null}}"#), mapping: mapping) == .noBid)
        // A path through a non-object is simply absent.
        #expect(BuyerProtocol.parseBid(status: 200, body: bytes(#"{"result":"none"}"#), mapping: mapping) == .noBid)
        if case .failed(.badResponse, _) = BuyerProtocol.parseBid(status: 200, body: bytes(#"{"result":{"price":"n/a"}}"#), mapping: mapping) {
        } else {
            Issue.record("a bad mapped price must be bad_response")
        }
    }

    // MARK: Posts

    @Test func postAccepted() {
        #expect(BuyerProtocol.parsePost(status: 200, body: bytes(#"{"accepted":true,"reference":"R-1"}"#)) == .accepted(reference: "R-1"))
        #expect(BuyerProtocol.parsePost(status: 201, body: bytes(#"{"accepted":"true"}"#)) == .accepted(reference: nil))
        #expect(BuyerProtocol.parsePost(status: 200, body: bytes(#"{"accepted":true,"reference":12345}"#)) == .accepted(reference: "12345"))
    }

    @Test func postRejected() {
        #expect(BuyerProtocol.parsePost(status: 200, body: bytes(#"{"accepted":false,"reason":"duplicate"}"#)) == .rejected(reason: "duplicate"))
        #expect(BuyerProtocol.parsePost(status: 200, body: bytes(#"{"accepted":false}"#)) == .rejected(reason: nil))
        // Only the configured values accept: "yes" and 1 are not "true".
        #expect(BuyerProtocol.parsePost(status: 200, body: bytes(#"{"accepted":"yes"}"#)) == .rejected(reason: nil))
        #expect(BuyerProtocol.parsePost(status: 200, body: bytes(#"{"accepted":1}"#)) == .rejected(reason: nil))
    }

    @Test func postFailed() {
        #expect(BuyerProtocol.parsePost(status: 500, body: bytes(#"{"accepted":true}"#)) == .failed(detail: "HTTP 500"))
        #expect(BuyerProtocol.parsePost(status: 302, body: []) == .failed(detail: "HTTP 302"))
        #expect(BuyerProtocol.parsePost(status: 200, body: bytes(#"{"reference":"R"}"#)) == .failed(detail: "answer has no accepted"))
        #expect(BuyerProtocol.parsePost(status: 200, body: bytes(#"{"accepted":null}"#)) == .failed(detail: "answer has no accepted"))
        #expect(BuyerProtocol.parsePost(status: 200, body: bytes(#"{"accepted":{"v":true}}"#)) == .failed(detail: "answer has no accepted"))
        guard case .failed(let detail) = BuyerProtocol.parsePost(status: 200, body: bytes("<html>ok</html>")) else {
            Issue.record("HTML answer must fail")
            return
        }
        #expect(detail.hasPrefix("invalid JSON at byte"))
        guard case .failed = BuyerProtocol.parsePost(status: 200, body: []) else {
            Issue.record("an empty 200 is not an acceptance")
            return
        }
    }

    @Test func postWithAcceptedValuesMapping() {
        let mapping = ResponseMapping(acceptedPath: ["result", "status"], acceptedValues: ["success", "Matched"],
                                      reasonPath: ["result", "message"], referencePath: ["lead_id"])
        #expect(BuyerProtocol.parsePost(status: 200, body: bytes(#"{"result":{"status":"success"},"lead_id":"L9"}"#), mapping: mapping)
                == .accepted(reference: "L9"))
        #expect(BuyerProtocol.parsePost(status: 200, body: bytes(#"{"result":{"status":"Matched"}}"#), mapping: mapping)
                == .accepted(reference: nil))
        #expect(BuyerProtocol.parsePost(status: 200, body: bytes(#"{"result":{"status":"matched","message":"case"}}"#), mapping: mapping)
                == .rejected(reason: "case"))
        #expect(BuyerProtocol.parsePost(status: 200, body: bytes(#"{"result":{"status":"failure","message":"dup"}}"#), mapping: mapping)
                == .rejected(reason: "dup"))
        #expect(BuyerProtocol.parsePost(status: 200, body: bytes(#"{"accepted":true}"#), mapping: mapping)
                == .failed(detail: "answer has no result.status"))
    }
}

/// CONTRACT v2 "Buyer answers are untrusted", without I/O.
struct BidLimitsTests {
    func parse(_ text: String, maxBid: Money = Campaign.defaultMaxBid) -> AuctionRound.PingAnswer {
        BuyerProtocol.parseBid(status: 200, body: Array(text.utf8), maxBid: maxBid)
    }

    func isBadResponse(_ answer: AuctionRound.PingAnswer) -> Bool {
        if case .failed(.badResponse, _) = answer { return true }
        return false
    }

    @Test(arguments: ["0", "-1", "86401", "9300000000000000", "99999999999999999999999", "1.5", "6e1", "\"soon\"", "\"\"", "true", "[]"])
    func expiryOutOfBoundsIsBadResponse(_ value: String) {
        #expect(isBadResponse(parse(#"{"bid": 5, "expires_in_s": \#(value)}"#)))
    }

    @Test(arguments: ["-1", "7201", "9300000000000000", "90.5", "9e1", "\"long\"", "{}"])
    func minimumDurationOutOfBoundsIsBadResponse(_ value: String) {
        #expect(isBadResponse(parse(#"{"bid": 5, "min_duration_s": \#(value)}"#)))
    }

    @Test func integerStringsAndBoundsAreAccepted() {
        #expect(parse(#"{"bid": 5, "expires_in_s": "60", "min_duration_s": "0"}"#)
                == .bid(price: Money(5), bidID: nil, expiresInS: 60, destination: nil, minDurationS: 0))
        #expect(parse(#"{"bid": 5, "expires_in_s": 86400, "min_duration_s": 7200}"#)
                == .bid(price: Money(5), bidID: nil, expiresInS: 86_400, destination: nil, minDurationS: 7_200))
    }

    @Test func bidsAboveTheCampaignMaximumAreBadResponses() {
        #expect(isBadResponse(parse(#"{"bid": 100.01}"#, maxBid: Money(100))))
        #expect(parse(#"{"bid": 100}"#, maxBid: Money(100)) == .bid(price: Money(100), bidID: nil, expiresInS: nil, destination: nil, minDurationS: nil))
        #expect(isBadResponse(parse(#"{"bid": 99999999999999}"#)))
    }

    @Test func expiryArithmeticSaturates() {
        #expect(RankedBid.expiry(closedAtMs: .max - 5, holdS: 60) == .max)
        #expect(RankedBid.expiry(closedAtMs: 1_000, holdS: .max) == .max)
        #expect(RankedBid.expiry(closedAtMs: 1_000, holdS: 2) == 3_000)
    }

    @Test func moneySumsSaturateInsteadOfTrapping() {
        #expect(Money(units: .max) + Money(1) == Money(units: .max))
        #expect(Money(units: .min) - Money(1) == Money(units: .min))
        #expect(Money(2) + Money(3) == Money(5))
    }

    @Test func onlyCertificateConsentGoesIntoPings() throws {
        let consent = JSONObject([
            "trustedform_cert_url": "https://cert.trustedform.com/abc", "jornaya_leadid": "LEAD-1", "tcpa_consent": true,
            "email": "jo@example.com", "signer": "Doe",
        ])
        let body = BuyerProtocol.PingTemplate(
            auctionID: "r", campaign: Campaign(id: "c", vertical: "v"), lead: JSONObject(), consent: consent
        ).body(tmaxMs: 100)
        #expect(!body.contains("jo@example.com"))
        #expect(!body.contains("Doe"))
        let pinged = try #require(try JSONValue.parse(body)["consent"]?.objectValue)
        #expect(Set(pinged.keys) == BuyerProtocol.pingConsentKeys)
        let post = BuyerProtocol.postBody(auctionID: "r", bid: RankedBid(buyerID: "b", price: Money(1)), lead: JSONObject(),
                                          contact: JSONObject(), consent: consent)
        #expect(post.contains("jo@example.com"))
    }
}
