import Foundation
import GavelCore
import GavelStore

extension Exchange {
    /// Calls placed by a telephony provider's webhooks are named `call_tw_<CallSid>`: their events
    /// come only from the provider's signed callbacks, never from a seller's `/v1/calls/{id}/events`.
    public static let providerCallPrefix = "call_tw_"

    /// Keeps the recording URL a telephony provider reports for a call.
    public func attachRecording(callID: String, url: String) async throws(ExchangeError) {
        do { try await store.attachRecording(roundID: callID, url: url, atMs: nowMs) } catch { throw .storage("\(error)") }
    }
}
