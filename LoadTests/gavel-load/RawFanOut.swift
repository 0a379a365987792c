import GavelCore
import GavelPing

/// The ceiling: the same auction done with no exchange in between.
///
/// Per "auction", the ping JSON the exchange would send (built by the same `BuyerProtocol` code) goes
/// to all N buyers at once on libcurl multi; when every answer is in or the ping budget is over, one
/// post (built and parsed by the same code) goes to the highest bidder with the time left. No
/// eligibility, no ledger, no fallback, no SQLite, no seller HTTP: what is left is the fan-out itself,
/// on the same machine, against the same mock buyers.
struct RawFanOut: Workload {
    var buyersURL: String
    var buyerIDs: [String]
    /// The whole round's budget.
    var tmaxMs: Int
    /// When bidding closes (the exchange's `ping_timeout_ms`).
    var pingTimeoutMs: Int
    /// Kept back from the budget, as the exchange keeps 3 ms back for recording.
    var reserveMs = 3
    /// A post is not started with less time than this left, as in the exchange.
    var minimumPostMs = 10
    var runTag: String
    var engine: CurlMultiEngine

    /// The campaign the pings describe; only its id, vertical and kind appear in the body.
    private static let campaign = Campaign(id: "raw", vertical: "auto_insurance", tmaxMs: 150)
    private static let lead = JSONObject(["zip": "94107", "state": "CA"])
    private static let contact = JSONObject(["email": "raw@example.com"])

    func perform(_ index: Int) async -> Outcome {
        let startNs = Monotonic.now()
        let auctionID = "raw_\(runTag)_\(index)"
        let template = BuyerProtocol.PingTemplate(auctionID: auctionID, campaign: Self.campaign, lead: Self.lead)
        let body = Array(template.body(tmaxMs: pingTimeoutMs).utf8)
        let engine = engine

        var best: (buyer: String, bid: RankedBid)?
        var failedPings = 0
        await withTaskGroup(of: (String, HTTPResult).self) { group in
            for buyer in buyerIDs {
                let request = HTTPRequest(url: "\(buyersURL)/\(buyer)/ping", headers: [("Content-Type", "application/json")],
                                          body: body, timeoutMs: pingTimeoutMs)
                group.addTask { (buyer, await engine.send(request)) }
            }
            for await (buyer, result) in group {
                guard case .success(let response) = result else { failedPings += 1; continue }
                switch BuyerProtocol.parseBid(status: response.status, body: response.body) {
                case .bid(let price, let bidID, let expiresInS, _, _):
                    if best == nil || price > best!.bid.price {
                        best = (buyer, RankedBid(buyerID: buyer, price: price, bidID: bidID, priority: 0, weight: 1, expiresInS: expiresInS))
                    }
                case .noBid:
                    break
                case .failed:
                    failedPings += 1
                }
            }
        }

        var outcome = Outcome(status: .unsold, auctionID: nil, pings: buyerIDs.count, failedPings: failedPings)
        let elapsedMs = Int((Monotonic.now() - startNs) / 1_000_000)
        let remainingMs = tmaxMs - elapsedMs - reserveMs
        guard let best, remainingMs >= minimumPostMs else { return outcome }
        let postBody = BuyerProtocol.postBody(auctionID: auctionID, bid: best.bid, lead: Self.lead, contact: Self.contact)
        let post = HTTPRequest(url: "\(buyersURL)/\(best.buyer)/post", headers: [("Content-Type", "application/json")],
                               body: Array(postBody.utf8), timeoutMs: remainingMs)
        if case .success(let response) = await engine.send(post),
           case .accepted = BuyerProtocol.parsePost(status: response.status, body: response.body) {
            outcome.status = .sold
        }
        return outcome
    }
}
