import GavelCore
import GavelPing

/// `POST /v1/leads` against the exchange, one lead per request.
///
/// Every lead carries a different email (`lt<run>-<index>@example.com`), so buyers' duplicate
/// windows never turn a load test into a test of duplicate detection.
struct LeadWorkload: Workload {
    var exchangeURL: String
    var apiKey: String
    var campaign: String
    /// Sent as the request's `tmax_ms`.
    var tmaxMs: Int
    /// The generator's own timeout for one answer (well past the budget: a late answer still counts).
    var clientTimeoutMs: Int
    /// Makes the emails of this run distinct from any earlier run's.
    var runTag: String
    var engine: CurlMultiEngine

    private var url: String { exchangeURL + "/v1/leads" }

    func perform(_ index: Int) async -> Outcome {
        let body = #"{"campaign":"\#(campaign)","lead":{"zip":"94107","state":"CA"},"#
            + #""contact":{"email":"lt\#(runTag)-\#(index)@example.com"},"tmax_ms":\#(tmaxMs)}"#
        let request = HTTPRequest(
            url: url, method: .post,
            headers: [("Content-Type", "application/json"), ("Authorization", "Bearer " + apiKey)],
            body: Array(body.utf8), timeoutMs: clientTimeoutMs)
        switch await engine.send(request) {
        case .failure(let error):
            return .failed(error.shortDescription)
        case .success(let response):
            guard response.status == 200 else { return Self.refusal(status: response.status, body: response.body) }
            return Self.interpret(response.body)
        }
    }

    var shedProbe: ShedProbe? {
        ShedProbe(exchangeURL: exchangeURL, apiKey: apiKey, campaign: campaign, tmaxMs: tmaxMs, timeoutMs: clientTimeoutMs, runTag: runTag)
    }

    /// A non-200 answer: a 503 whose `error.code` is `overloaded` is a shed round; anything else is an
    /// error labelled by its status, and for a 503 by its code too (`http_503_storage_timeout`).
    static func refusal(status: Int, body: [UInt8]) -> Outcome {
        guard status == 503 else { return .failed("http_\(status)") }
        switch ShedProbe.errorCode(body) {
        case "overloaded": return Outcome(status: .shed)
        case let code?: return .failed("http_503_" + code)
        case nil: return .failed("http_503")
        }
    }

    /// Reads `{"auction_id", "status", "payout"}`; anything else is a `bad_answer` error.
    static func interpret(_ body: [UInt8]) -> Outcome {
        guard let json = try? JSONValue.parse(body), let id = json["auction_id"]?.stringValue else {
            return .failed("bad_answer")
        }
        switch json["status"]?.stringValue {
        case "sold": return Outcome(status: .sold, auctionID: id)
        case "unsold": return Outcome(status: .unsold, auctionID: id)
        default: return .failed("bad_answer")
        }
    }
}
