import Foundation
import GavelCore
import GavelStore

extension Exchange {
    /// Calls placed by a telephony provider's webhooks are named `call_tw_<CallSid>`: their events
    /// come only from the provider's signed callbacks, never from a seller's `/v1/calls/{id}/events`.
    public static let providerCallPrefix = "call_tw_"

    /// The routing of a call already recorded under `callID` (a provider's repeated voice webhook
    /// under another idempotency token), as `CallRouting.json` text; nil when there is no such call.
    public func callRouting(callID: String) async throws(ExchangeError) -> String? {
        let stored: StoredRound?
        do { stored = try await store.round(id: callID) } catch { throw .storage("\(error)") }
        guard let stored, stored.kind == AuctionKind.call.rawValue else { return nil }
        var routing = JSONObject()
        routing["call_id"] = .string(callID)
        let live = stored.phase == RoundRecord.Phase.live.rawValue
        if live, let winner = stored.winnerID, let destination = stored.buyers.first(where: { $0.buyerID == winner })?.destination {
            routing["status"] = "routed"
            routing["destination"] = .string(destination)
        } else {
            routing["status"] = "unrouted"
        }
        return JSONValue.object(routing).serialized
    }

    /// Keeps the recording URL a telephony provider reports for a call.
    public func attachRecording(callID: String, url: String) async throws(ExchangeError) {
        do { try await store.attachRecording(roundID: callID, url: url, atMs: nowMs) } catch { throw .storage("\(error)") }
    }
}
