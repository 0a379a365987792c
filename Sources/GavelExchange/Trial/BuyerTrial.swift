import Foundation
import GavelCore
import GavelPing

/// `gavel try-buyer`: one sample ping (and, when asked, one post) to a buyer, shown as the buyer
/// sees it — the exact request, the raw answer, the time it took — and how Gavel read the answer.
/// The tool an operator uses on the phone with a buyer's developer.
///
/// A ping never carries personal data; a post (the full record) is sent only when asked, and only
/// to the buyer's `post.test_url` unless `live` is set.
public struct BuyerTrial: Sendable {
    public struct Options: Sendable {
        /// A seller's request body, as for `POST /v1/leads` (leads) or `POST /v1/calls` (calls); nil: a sample.
        public var requestJSON: String?
        public var post = false
        /// Post to the buyer's live `post.url` when it has no `test_url`.
        public var live = false
        public var timeoutMs: Int?

        public init(requestJSON: String? = nil, post: Bool = false, live: Bool = false, timeoutMs: Int? = nil) {
            self.requestJSON = requestJSON
            self.post = post
            self.live = live
            self.timeoutMs = timeoutMs
        }
    }

    /// Why a trial could not run: the words say what to change.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    let config: ExchangeConfig
    let engine: CurlMultiEngine

    public init(config: ExchangeConfig, engine: CurlMultiEngine) {
        self.config = config
        self.engine = engine
    }

    /// A lead that passes common filters, with a clearly fake contact.
    public static func sampleLead(campaign: Campaign) -> String {
        """
        {"campaign": "\(campaign.id)", "source": "gavel-try-buyer", "lead": {"zip": "90210", "state": "CA"},
         "contact": {"first_name": "Test", "last_name": "Lead", "email": "test.lead@example.com", "phone": "+13105550100",
                     "address": "1 Test Street", "city": "Beverly Hills"},
         "consent": {"trustedform_cert_url": "https://cert.trustedform.com/0000000000000000000000000000000000000000", "tcpa_consent": true}}
        """
    }

    public static func sampleCall(campaign: Campaign) -> String {
        #"{"campaign": "\#(campaign.id)", "caller": {"number": "+13105550100", "zip": "90210", "state": "CA"}}"#
    }

    /// Runs the trial and returns the report to print.
    public func run(buyerID: String, options: Options) async throws(Failure) -> String {
        guard let buyer = config.buyer(id: buyerID) else {
            throw Failure("no buyer \"\(buyerID)\" (buyers: \(config.buyers.map(\.id).joined(separator: ", ")))")
        }
        guard let campaignID = buyer.campaigns.first(where: { config.campaigns[$0] != nil }), var campaign = config.campaigns[campaignID] else {
            throw Failure("buyer \(buyerID) buys no campaign of this config")
        }
        // Every campaign of the buyer may be tried: the seller below may sell into all of them.
        let seller = Seller(id: "gavel-try-buyer", apiKey: "gavel-try-buyer-key", campaigns: Set(config.campaigns.keys))
        var report = Report()
        let nowMs = Int64(Date().timeIntervalSince1970 * 1000)
        let auctionID = AuctionID.make(prefix: "try_", nowMs: nowMs)

        var lead = JSONObject()
        var contact = JSONObject()
        var consent: JSONObject?
        var caller: JSONObject?
        var source: String?
        if campaign.kind == .call {
            let body = options.requestJSON ?? BuyerTrial.sampleCall(campaign: campaign)
            let call: CallSubmission
            do { call = try CallSubmission.parse(Array(body.utf8), seller: seller, config: config) } catch {
                throw Failure("the sample call is not valid: \(error)")
            }
            campaign = call.campaign
            lead = call.eligibilityFields
            var callerFields = JSONObject()
            if let areaCode = PhoneNumber.areaCode(call.callerNumber) { callerFields["area_code"] = .string(areaCode) }
            if let state = call.state { callerFields["state"] = .string(state) }
            if let zip = call.zip { callerFields["zip"] = .string(zip) }
            callerFields["hash"] = .string(ContactHasher(key: "gavel-try-buyer").hash(phoneNumber: call.callerNumber))
            caller = callerFields
        } else {
            let body = options.requestJSON ?? BuyerTrial.sampleLead(campaign: campaign)
            let submission: LeadSubmission
            do { submission = try LeadSubmission.parse(Array(body.utf8), shape: .fullLead, seller: seller, config: config) } catch {
                throw Failure("the sample lead is not valid: \(error)")
            }
            campaign = submission.campaign
            lead = submission.lead
            contact = submission.contact ?? JSONObject()
            consent = submission.consent
            source = submission.source
        }
        report.line("buyer \(buyer.id) (codec: \(buyer.codec.codec.name)), campaign \(campaign.id) (\(campaign.kind.rawValue))")
        // Refused before anything is sent: a post the operator did not mean must not half-happen.
        var postEndpoint: Endpoint?
        if options.post {
            guard campaign.kind == .lead else { throw Failure("call buyers take the caller by transfer: there is no post to try") }
            guard var endpoint = buyer.post else { throw Failure("buyer \(buyer.id) has no post endpoint") }
            if let testURL = endpoint.testURL {
                endpoint.url = testURL
            } else if !options.live {
                throw Failure("buyer \(buyer.id) has no post.test_url: refusing to post a sample lead to its live endpoint (add --live to do it anyway)")
            }
            postEndpoint = endpoint
        }

        var bid: RankedBid?
        var kept: [String: String] = [:]
        if let price = buyer.fixedPrice {
            report.line("fixed price \(price): no ping")
            bid = RankedBid(buyerID: buyer.id, price: price)
        } else if let ping = buyer.ping {
            let tmax = options.timeoutMs ?? ping.timeoutMs
            let input = PingInput(auctionID: auctionID, campaign: campaign, lead: lead, caller: caller, consent: consent, source: source,
                                  tmaxMs: tmax, nowMs: nowMs)
            let request = buyer.codec.codec.pingRequest(input, endpoint: ping)
                .transfer(timeoutMs: tmax, signingSecret: buyer.signingSecret, nowS: nowMs / 1000)
            report.section("PING (no personal data)")
            let result = await exchange(request, report: &report)
            var (answer, _) = Exchange.interpretPing(result, codec: buyer.codec.codec, maxBid: campaign.maxBid)
            if campaign.kind == .call { answer.answer = Exchange.checkCallBid(answer.answer, buyer: buyer) }
            report.section("GAVEL READ IT AS")
            switch answer.answer {
            case .bid(let price, let bidID, let expiresInS, let destination, let minDurationS):
                let floor = max(campaign.floor, buyer.floor)
                report.line("bid \(price)" + (price < floor ? " (below the floor \(floor): below_floor)" : ""))
                report.line("bid_id \(bidID ?? "-"), expires_in_s \(expiresInS.map(String.init) ?? "- (campaign default \(campaign.bidHoldS))")")
                if campaign.kind == .call {
                    report.line("destination \(destination ?? "-"), min_duration_s \(minDurationS.map(String.init) ?? "-")")
                }
                bid = RankedBid(buyerID: buyer.id, price: price, bidID: bidID, expiresInS: expiresInS, destination: destination,
                                minDurationS: minDurationS)
            case .noBid:
                report.line("no_bid")
            case .failed(let reason, let detail):
                report.line("\(reason.rawValue): \(detail)")
            }
            if let reason = answer.buyerReason {
                report.line("buyer_reason \"\(reason.code)\"" + (reason.category.map { " (category \($0))" } ?? ""))
            }
            kept = answer.kept
            for (name, value) in kept.sorted(by: { $0.key < $1.key }) { report.line("kept for the post: ping.\(name) = \(value)") }
        }

        guard let endpoint = postEndpoint else {
            report.line("")
            report.line(campaign.kind == .lead ? "(no post sent: add --post to send the sample lead to the buyer's post.test_url)" : "(calls have no post)")
            return report.text
        }
        guard let bid else {
            report.line("")
            report.line("(no post sent: the ping gave no valid bid)")
            return report.text
        }
        let input = PostInput(auctionID: auctionID, campaign: campaign, bid: bid, lead: lead, contact: contact, consent: consent,
                              source: source, kept: kept, tmaxMs: endpoint.timeoutMs, nowMs: nowMs)
        let request = buyer.codec.codec.postRequest(input, endpoint: endpoint)
            .transfer(timeoutMs: options.timeoutMs ?? endpoint.timeoutMs, signingSecret: buyer.signingSecret, nowS: nowMs / 1000, sendOnce: true)
        report.section("POST to \(endpoint.testURL != nil ? "post.test_url" : "the LIVE post.url") (the full record)")
        let result = await exchange(request, report: &report)
        report.section("GAVEL READ IT AS")
        switch result {
        case .success(let response):
            let answer = buyer.codec.codec.parsePost(status: response.status, body: response.body)
            switch answer.result {
            case .accepted(let reference): report.line("accepted, reference \(reference ?? "-")")
            case .rejected(let reason): report.line("post_rejected" + (reason.map { ": \($0)" } ?? ""))
            case .failed(let detail): report.line("post_failed: \(detail)")
            case .timedOut: report.line("post_timeout")
            }
            if let reason = answer.buyerReason {
                report.line("buyer_reason \"\(reason.code)\"" + (reason.category.map { " (category \($0))" } ?? ""))
            }
        case .failure(let error):
            report.line(error.isTimeout ? "post_timeout: \(error.detail)" : "post_failed: \(error)")
        }
        return report.text
    }

    /// Sends one request, writing it and its answer into the report.
    private func exchange(_ request: HTTPRequest, report: inout Report) async -> HTTPResult {
        report.line("\(request.method.rawValue) \(request.url)")
        for header in request.headers { report.line("\(header.name): \(header.value)") }
        if !request.body.isEmpty {
            report.line("")
            report.line(String(decoding: request.body, as: UTF8.self))
        }
        let result = await engine.send(request)
        report.line("")
        switch result {
        case .success(let response):
            report.line("<- HTTP \(response.status) in \(Double(response.latencyUs) / 1000) ms")
            report.line(response.body.isEmpty ? "(empty body)" : String(decoding: response.body.prefix(64 * 1024), as: UTF8.self))
        case .failure(let error):
            report.line("<- no answer after \(Double(error.latencyUs) / 1000) ms: \(error)")
        }
        return result
    }

    struct Report {
        var text = ""
        mutating func line(_ line: String) { text += line + "\n" }
        mutating func section(_ title: String) {
            text += "\n== \(title) ==\n"
        }
    }
}
