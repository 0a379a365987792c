import GavelCore
import GavelExchange
import GavelStore

/// The JSON of `GET /v1/auctions/{id}`: every buyer considered with its reason, bid and latency;
/// every post attempt; the outcome. No PII: the contact is not part of the view.
enum RoundView {
    static func json(_ round: StoredRound) -> JSONValue {
        var object = JSONObject()
        object["auction_id"] = .string(round.id)
        object["kind"] = .string(round.kind)
        object["campaign"] = .string(round.campaignID)
        object["phase"] = .string(round.phase)
        object["status"] = .string(round.status)
        object["created_at"] = .string(Timestamps.rfc3339(ms: round.createdAtMs))
        object["tmax_ms"] = .number(String(round.tmaxMs))
        object["duration_ms"] = .number(Money(units: Int64(round.durationUs) * 10).description)
        object["winner"] = round.winnerID.map(JSONValue.string) ?? .null
        object["price"] = round.price.map(JSONValue.init) ?? .null
        object["payout"] = JSONValue(round.payout ?? .zero)
        object["lead"] = (try? JSONValue.parse(round.leadJSON)) ?? .null
        if let source = round.source { object["source"] = .string(source) }
        if let recording = round.recordingURL { object["recording_url"] = .string(recording) }
        object["buyers"] = .array(round.buyers.map { buyer in
            var entry = JSONObject()
            entry["buyer"] = .string(buyer.buyerID)
            entry["reason"] = .string(buyer.reason)
            entry["bid"] = buyer.bid.map(JSONValue.init) ?? .null
            entry["bid_id"] = buyer.bidID.map(JSONValue.string) ?? .null
            entry["latency_ms"] = buyer.latencyUs.map { .number(Money(units: Int64($0) * 10).description) } ?? .null
            entry["tmax_ms"] = buyer.tmaxMs.map { .number(String($0)) } ?? .null
            if let destination = buyer.destination { entry["destination"] = .string(destination) }
            if let estimate = buyer.estimate { entry["estimate"] = .number(estimate.description) }
            if let detail = buyer.detail { entry["detail"] = .string(detail) }
            if let code = buyer.buyerReason { entry["buyer_reason"] = RoundView.buyerReason(code, category: buyer.buyerReasonCategory) }
            return .object(entry)
        })
        object["posts"] = .array(round.posts.map { post in
            var entry = JSONObject()
            entry["sequence"] = .number(String(post.sequence))
            entry["buyer"] = .string(post.buyerID)
            entry["price"] = JSONValue(post.price)
            entry["result"] = .string(post.result)
            entry["latency_ms"] = .number(Money(units: Int64(post.latencyUs) * 10).description)
            if let reference = post.reference { entry["reference"] = .string(reference) }
            if let detail = post.detail { entry["detail"] = .string(detail) }
            if let code = post.buyerReason { entry["buyer_reason"] = RoundView.buyerReason(code, category: post.buyerReasonCategory) }
            return .object(entry)
        })
        if !round.events.isEmpty {
            object["events"] = .array(round.events.map { event in
                var entry = JSONObject()
                entry["type"] = .string(event.type)
                entry["at"] = .string(Timestamps.rfc3339(ms: event.atMs))
                if let buyer = event.buyerID { entry["buyer"] = .string(buyer) }
                if let duration = event.durationS { entry["duration_s"] = .number(String(duration)) }
                if let url = event.recordingURL { entry["recording_url"] = .string(url) }
                if let detail = event.detail { entry["detail"] = .string(detail) }
                return .object(entry)
            })
        }
        if let attribution = round.attributionJSON, let json = try? JSONValue.parse(attribution) {
            object["attribution"] = json
        }
        return .object(object)
    }

    /// The buyer's own code, and the operator's category for it when config maps one.
    static func buyerReason(_ code: String, category: String?) -> JSONValue {
        var object = JSONObject()
        object["code"] = .string(code)
        object["category"] = category.map(JSONValue.string) ?? .null
        return .object(object)
    }
}
