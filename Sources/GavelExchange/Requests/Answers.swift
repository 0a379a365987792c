import Foundation
import GavelCore
import GavelStore
import Crypto

/// A request's idempotency key, as the exchange needs it: the key's scope and the body's hash.
/// The answer is stored in the round's own transaction, so a committed round always has it.
public struct IdempotencyTicket: Sendable, Hashable {
    /// Seller, method, path and key.
    public var scope: String
    /// SHA-256 (hex) of the body's canonical JSON.
    public var bodyHash: String

    public init(scope: String, bodyHash: String) {
        self.scope = scope
        self.bodyHash = bodyHash
    }

    /// The stored form of a 200 answer with `json` as its body.
    func answer(_ json: JSONValue, roundID: String, atMs nowMs: Int64) -> StoredAnswer {
        StoredAnswer(scope: scope, bodyHash: bodyHash, status: 200, response: JSONText.body(json), roundID: roundID,
                     createdAtMs: nowMs)
    }
}

/// Response bodies as sent: the same bytes for a first answer and for its idempotent repeats.
public enum JSONText {
    public static func body(_ json: JSONValue) -> String { json.serialized + "\n" }
}

// The answers of CONTRACT's seller endpoints, rendered once here so that the HTTP edge and the
// idempotency store send the same bytes.

extension LeadResult {
    /// `{"auction_id", "status": "sold" | "unsold", "payout"}`.
    public var json: JSONValue {
        ["auction_id": .string(auctionID), "status": .string(sold ? "sold" : "unsold"), "payout": JSONValue(payout)]
    }
}

extension PingResult {
    /// `{"ping_id", "status": "bid" | "no_bid", "payout", "expires_at"}`.
    public var json: JSONValue {
        [
            "ping_id": .string(pingID), "status": .string(hasBid ? "bid" : "no_bid"), "payout": JSONValue(payout),
            "expires_at": .string(Timestamps.rfc3339(ms: expiresAtMs)),
        ]
    }
}

extension CallRouting {
    /// `{"call_id", "status": "routed" | "unrouted", "destination", "payout", "min_duration_s", "expires_at"}`.
    public var json: JSONValue {
        var object = JSONObject()
        object["call_id"] = .string(callID)
        object["status"] = .string(routed ? "routed" : "unrouted")
        object["destination"] = destination.map(JSONValue.string) ?? .null
        object["payout"] = JSONValue(payout)
        object["min_duration_s"] = minDurationS.map { .number(String($0)) } ?? .null
        object["expires_at"] = expiresAtMs.map { .string(Timestamps.rfc3339(ms: $0)) } ?? .null
        return .object(object)
    }
}

extension CallEventOutcome {
    /// `{"call_id", "status", "payout"}`, plus the next destination when a failed transfer was routed on.
    public func json(callID: String) -> JSONValue {
        var object = JSONObject()
        object["call_id"] = .string(callID)
        object["status"] = .string(status)
        object["payout"] = JSONValue(payout)
        if let routing, routing.routed, case .object(let fields) = routing.json {
            for key in ["destination", "min_duration_s", "expires_at"] { object[key] = fields[key] }
            object["payout"] = fields["payout"]
        }
        return .object(object)
    }
}

public enum Timestamps {
    /// RFC 3339 in UTC with milliseconds (`2026-11-30T07:24:05.123Z`). Written by hand: a
    /// formatter per answer costs more than the rest of the answer, and this is on every ping's.
    public static func rfc3339(ms: Int64) -> String {
        var seconds = time_t(ms.quotientAndRemainder(dividingBy: 1000).quotient - (ms % 1000 < 0 ? 1 : 0))
        let millis = Int((ms % 1000 + 1000) % 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                      parts.tm_hour, parts.tm_min, parts.tm_sec, millis)
    }
}

extension IdempotencyTicket {
    /// The ticket for a request that sent `Idempotency-Key: key` (nil when it sent none). The key
    /// is scoped to the seller, the method and the path (CONTRACT v2); the body is compared by
    /// its canonical JSON, or byte for byte when it is not JSON.
    public static func make(key: String?, sellerID: String, method: String, path: String, body: [UInt8]) throws(RequestError) -> IdempotencyTicket? {
        guard let key else { return nil }
        guard (1...255).contains(key.utf8.count), key.utf8.allSatisfy({ (0x20...0x7E).contains($0) }) else {
            throw RequestError(status: 400, code: "invalid_header", message: "Idempotency-Key must be 1 to 255 printable ASCII characters",
                               field: "Idempotency-Key")
        }
        let canonical: [UInt8]
        if let json = try? JSONValue.parse(body) { canonical = Array(json.canonical.utf8) } else { canonical = body }
        let hash = SHA256.hash(data: canonical).map { String(format: "%02x", $0) }.joined()
        return IdempotencyTicket(scope: "\(sellerID) \(method) \(path) \(key)", bodyHash: hash)
    }
}
