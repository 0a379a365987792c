import Foundation
import GavelCore
import GavelExchange
import GavelStore
import Testing

/// Each ready-made template in `buyer-configs/templates/`, end to end: a real exchange, a buyer
/// file of a few lines of YAML, and a real HTTP buyer on loopback speaking that wire format.
@Suite(.serialized)
struct BuyerTemplateTests {
    static let leadWithConsent = """
        {"campaign": "autos", "source": "pub-7", "lead": {"zip": "94107", "state": "ca", "age": 34},
         "contact": {"first_name": "Jo", "last_name": "Doe", "email": "jo@example.com", "phone": "+1 (555) 123-4567", "address": "1 Main St", "city": "SF"},
         "consent": {"trustedform_cert_url": "https://cert.trustedform.com/abc", "tcpa_consent": true, "signer_email": "jo@example.com"}}
        """

    /// No personal data of the lead above may be in a ping.
    static func assertNoPII(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        for secret in ["jo@example.com", "Doe", "1234567", "Main St"] {
            #expect(!text.contains(secret), "a ping carried \(secret): \(text)", sourceLocation: sourceLocation)
        }
    }

    @Test func boberdooFormPostsWithXMLAnswersAndTheLeadIDComesBack() async throws {
        let rejecting = await WireBuyer { request in
            if request.form["Mode"] == "ping" {
                return .init(contentType: "text/xml", body: """
                    <?xml version="1.0" encoding="UTF-8"?><response><status>Matched</status><lead_id>R-1</lead_id>
                    <bids><bid><bid_id>9</bid_id><seller_lead_bid>20.00</seller_lead_bid></bid></bids></response>
                    """)
            }
            return .init(contentType: "text/xml", body: "<response><status>Unmatched</status><error>Duplicate Lead</error></response>")
        }
        let buyer = await WireBuyer { request in
            if request.form["Mode"] == "ping" {
                return .init(contentType: "text/xml", body: """
                    <?xml version="1.0" encoding="UTF-8"?>
                    <response><status>Matched</status><lead_id>L-77</lead_id><process_information><total_bids>3</total_bids></process_information>
                    <bids><bid><bid_id>a</bid_id><seller_lead_bid>10.00</seller_lead_bid></bid>
                    <bid><bid_id>b</bid_id><seller_lead_bid>14.25</seller_lead_bid></bid>
                    <bid><bid_id>c</bid_id><seller_lead_bid>9</seller_lead_bid></bid></bids></response>
                    """)
            }
            guard request.form["Lead_ID"] == "L-77" else {
                return .init(contentType: "text/xml", body: "<response><status>Error</status><error>Lead_ID missing</error></response>")
            }
            return .init(contentType: "text/xml", body: "<response><status>Matched</status><lead_id>L-77</lead_id></response>")
        }
        func file(_ id: String, _ wire: WireBuyer) -> String {
            """
            id: \(id)
            template: boberdoo
            campaigns: [autos]
            ping:
              url: \(wire.url("/ping"))
              body: {fields: {Key: bob-key-123, TYPE: "21", Age: "{{lead.age}}"}}
            post:
              url: \(wire.url("/post"))
              body: {fields: {Key: bob-key-123, TYPE: "21"}}
            """
        }
        let harness = try await TestExchange(buyers: [
            TestExchange.buyerFile("bob-main", file("bob-main", buyer)), TestExchange.buyerFile("bob-dupe", file("bob-dupe", rejecting)),
        ])
        let result = try await harness.runLead(Self.leadWithConsent)
        #expect(result.sold)

        let ping = try #require(buyer.requests(to: "/ping").first)
        #expect(ping.headers["content-type"] == "application/x-www-form-urlencoded")
        #expect(ping.form["Key"] == "bob-key-123")
        #expect(ping.form["API_Action"] == "pingPostLead")
        #expect(ping.form["TYPE"] == "21")
        #expect(ping.form["Zip"] == "94107")
        #expect(ping.form["State"] == "CA")
        #expect(ping.form["Age"] == "34")
        #expect(ping.form["Trusted_Form_URL"] == "https://cert.trustedform.com/abc")
        #expect(ping.form["TCPA_Consent"] == "Yes")
        Self.assertNoPII(ping.body)

        // The higher bidder rejected (its own words kept and categorised); the other sold at its best bid.
        let record = try await harness.round(result.auctionID)
        #expect(record.winnerID == "bob-main")
        #expect(record.price == Money(decimal: "14.25"))
        #expect(record.buyers.first { $0.buyerID == "bob-main" }?.bidID == "b")
        let rejected = try #require(record.posts.first { $0.buyerID == "bob-dupe" })
        #expect(rejected.result == "post_rejected")
        #expect(rejected.buyerReason == "Duplicate Lead")
        #expect(rejected.buyerReasonCategory == "duplicate")

        let post = try #require(buyer.requests(to: "/post").first)
        #expect(post.form["Mode"] == "post")
        #expect(post.form["Lead_ID"] == "L-77")
        #expect(post.form["Email"] == "jo@example.com")
        #expect(post.form["Phone"] == "5551234567")
        #expect(post.form["First_Name"] == "Jo")
        await harness.shutdown()
        buyer.stop()
        rejecting.stop()
    }

    @Test func rtbCallBuyerBidsOnTheCallerWithoutTheNumber() async throws {
        let buyer = await WireBuyer { _ in
            .init(body: #"{"bidId": "rtb-1", "bidAmount": "32.50", "expireInSeconds": 30, "phoneNumber": "+18005550199"}"#)
        }
        let sipBuyer = await WireBuyer { _ in .init(body: #"{"bidId": "rtb-2", "bidAmount": 30, "sipAddress": "sip:agent@pbx.example"}"#) }
        let declining = await WireBuyer { _ in .init(body: #"{"bidAmount": 0, "rejectReason": "Outside business hours"}"#) }
        func file(_ id: String, _ wire: WireBuyer) -> String {
            "id: \(id)\ntemplate: rtb-call\ncampaigns: [calls]\nmin_duration_s: 60\nping: {url: \"\(wire.url("/ping"))\"}\n"
        }
        let harness = try await TestExchange(buyers: [
            TestExchange.buyerFile("rtb-a", file("rtb-a", buyer)), TestExchange.buyerFile("rtb-sip", file("rtb-sip", sipBuyer)),
            TestExchange.buyerFile("rtb-no", file("rtb-no", declining)),
        ])
        let routing = try await harness.runCall()
        #expect(routing.destination == "+18005550199")

        let ping = try #require(buyer.requests(to: "/ping").first)
        let body = try JSONValue.parse(ping.body)
        #expect(body["zipcode"] == "94107")
        #expect(body["state"] == "CA")
        #expect(body["areaCode"] == "415")
        #expect(body["callerIdHash"]?.stringValue?.isEmpty == false)
        #expect(body["timeoutMs"]?.numberText != nil)
        #expect(!ping.body.contains("5550123"), "the caller's number went into a ping")

        let record = try await harness.round(routing.callID)
        let declined = try #require(record.buyers.first { $0.buyerID == "rtb-no" })
        #expect(declined.reason == "no_bid")
        #expect(declined.buyerReason == "Outside business hours")
        #expect(record.buyers.first { $0.buyerID == "rtb-sip" }?.destination == "sip:agent@pbx.example")
        #expect(record.buyers.first { $0.buyerID == "rtb-a" }?.bidID == "rtb-1")
        await harness.shutdown()
        for wire in [buyer, sipBuyer, declining] { wire.stop() }
    }

    @Test func leadConduitOutcomes() async throws {
        let buyer = await WireBuyer { request in
            let body = (try? JSONValue.parse(request.body)) ?? .null
            if request.path == "/ping" {
                return .init(body: #"{"outcome": "success", "price": 9.5, "lead": {"id": "lc-ping-1"}}"#)
            }
            guard body["ping_lead_id"] == "lc-ping-1", body["contact"]?["email"] == "jo@example.com" else {
                return .init(body: #"{"outcome": "error", "reason": "bad post"}"#)
            }
            return .init(body: #"{"outcome": "success", "lead": {"id": "lc-42"}, "price": 9.5}"#)
        }
        let failing = await WireBuyer { request in
            request.path == "/ping"
                ? .init(body: #"{"outcome": "success", "price": 12}"#)
                : .init(body: #"{"outcome": "failure", "reason": "Invalid Phone"}"#)
        }
        let declining = await WireBuyer { _ in .init(body: #"{"outcome": "failure", "reason": "Not in service area"}"#) }
        func file(_ id: String, _ wire: WireBuyer) -> String {
            """
            id: \(id)
            template: leadconduit
            campaigns: [autos]
            reason_categories: {"Invalid Phone": invalid_contact}
            ping: {url: "\(wire.url("/ping"))", headers: {Authorization: "Bearer lc-key"}}
            post: {url: "\(wire.url("/post"))", headers: {Authorization: "Bearer lc-key"}}
            """
        }
        let harness = try await TestExchange(buyers: [
            TestExchange.buyerFile("lc", file("lc", buyer)), TestExchange.buyerFile("lc-fail", file("lc-fail", failing)),
            TestExchange.buyerFile("lc-no", file("lc-no", declining)),
        ])
        let result = try await harness.runLead(Self.leadWithConsent)
        #expect(result.sold)
        let record = try await harness.round(result.auctionID)
        #expect(record.winnerID == "lc")
        #expect(record.posts.first { $0.buyerID == "lc" }?.reference == "lc-42")
        let rejected = try #require(record.posts.first { $0.buyerID == "lc-fail" })
        #expect(rejected.result == "post_rejected")
        #expect(rejected.buyerReasonCategory == "invalid_contact")
        #expect(record.buyers.first { $0.buyerID == "lc-no" }?.buyerReason == "Not in service area")

        let ping = try #require(buyer.requests(to: "/ping").first)
        #expect(ping.headers["authorization"] == "Bearer lc-key")
        let pingBody = try JSONValue.parse(ping.body)
        #expect(pingBody["lead"]?["zip"] == "94107")
        #expect(pingBody["source"] == "pub-7")
        #expect(pingBody["trustedform_cert_url"] == "https://cert.trustedform.com/abc")
        Self.assertNoPII(ping.body)
        // The post carries all of consent, the price and the contact.
        let post = try JSONValue.parse(try #require(buyer.requests(to: "/post").first).body)
        #expect(post["consent"]?["signer_email"] == "jo@example.com")
        #expect(post["price"] == .number("9.5"))
        await harness.shutdown()
        for wire in [buyer, failing, declining] { wire.stop() }
    }

    @Test func genericXMLBothWays() async throws {
        let buyer = await WireBuyer { request in
            if request.path == "/ping" {
                guard request.body.contains("<zip>94107</zip>"), request.body.hasPrefix("<?xml") else {
                    return .init(contentType: "application/xml", body: "<response><result>nobid</result><reason>bad ping</reason></response>")
                }
                return .init(contentType: "application/xml",
                             body: "<response><result>bid</result><amount>12.50</amount><bid_id>B1</bid_id><expires_in>60</expires_in></response>")
            }
            let accepted = request.body.contains("<bid_id>B1</bid_id>") && request.body.contains("<phone>15551234567</phone>")
            return .init(contentType: "application/xml", body: accepted
                ? "<response><accepted>true</accepted><reference>R1</reference></response>"
                : "<response><accepted>false</accepted><reason>mismatch</reason></response>")
        }
        let harness = try await TestExchange(buyers: [
            TestExchange.buyerFile("xml", "id: xml\ntemplate: generic-xml\ncampaigns: [autos]\nping: {url: \"\(buyer.url("/ping"))\"}\npost: {url: \"\(buyer.url("/post"))\"}\n"),
        ])
        let result = try await harness.runLead(Self.leadWithConsent)
        #expect(result.sold)
        let record = try await harness.round(result.auctionID)
        #expect(record.price == Money(decimal: "12.5"))
        #expect(record.posts.first?.reference == "R1")
        #expect(buyer.requests(to: "/ping").first?.headers["content-type"] == "application/xml")
        await harness.shutdown()
        buyer.stop()
    }

    @Test func nativeTemplateAndSignedRequests() async throws {
        let secret = "a-signing-secret-of-32-characters"
        let buyer = await WireBuyer { request in
            // The buyer's side of the README recipe: recompute the HMAC over "<t>.<body>" (GET: "<t>.<path?query>").
            let header = request.headers["gavel-signature"] ?? ""
            let parts = Dictionary(header.split(separator: ",").map { pair in
                let kv = pair.split(separator: "=", maxSplits: 1)
                return (String(kv[0]), kv.count > 1 ? String(kv[1]) : "")
            }, uniquingKeysWith: { first, _ in first })
            let t = parts["t"] ?? ""
            let signed = request.method == "GET" ? "\(t).\(request.path)?\(request.query)" : "\(t).\(request.body)"
            guard parts["v1"] == RequestSignature.hex(secret: secret, message: Array(signed.utf8)) else {
                return .init(status: 401, body: #"{"error": "bad signature"}"#)
            }
            return request.path == "/ping" ? .init(body: #"{"bid": 7.25, "bid_id": "n-1"}"#) : .init(body: #"{"accepted": true, "reference": "ok"}"#)
        }
        let getBuyer = await WireBuyer { request in
            guard request.headers["gavel-signature"] != nil, request.queryFields["zip"] == "94107" else { return .init(status: 400, body: "{}") }
            return .init(contentType: "text/plain", body: "BID 3.10 ok")
        }
        let harness = try await TestExchange(buyers: [
            TestExchange.buyerFile("native", """
                id: native
                template: gavel-native
                campaigns: [autos]
                signing_secret: \(secret)
                ping: {url: "\(buyer.url("/ping"))"}
                post: {url: "\(buyer.url("/post"))"}
                """),
            TestExchange.buyerFile("getter", """
                id: getter
                campaigns: [autos]
                signing_secret: \(secret)
                ping:
                  url: "\(getBuyer.url("/ping"))?api_key=k1"
                  method: GET
                  query: {zip: "{{lead.zip}}", state: "{{lead.state | upper}}"}
                  response: {format: text, bid: "BID ([0-9.]+)"}
                post: {url: "\(getBuyer.url("/post"))"}
                """),
        ])
        let result = try await harness.runLead(Self.leadWithConsent)
        #expect(result.sold)
        let record = try await harness.round(result.auctionID)
        #expect(record.winnerID == "native")
        #expect(record.buyers.first { $0.buyerID == "getter" }?.bid == Money(decimal: "3.1"))
        let get = try #require(getBuyer.requests(to: "/ping").first)
        #expect(get.method == "GET")
        #expect(get.query == "api_key=k1&zip=94107&state=CA")
        // The GET's signature covers its path and query.
        let header = try #require(get.headers["gavel-signature"])
        let t = String(header.split(separator: ",")[0].dropFirst(2))
        #expect(header.hasSuffix("v1=" + RequestSignature.hex(secret: secret, message: Array("\(t)./ping?\(get.query)".utf8))))
        await harness.shutdown()
        buyer.stop()
        getBuyer.stop()
    }
}
