import Foundation
import GavelCore
import GavelStore

/// Held ping bids and live calls, written through to the store with every record of their round
/// and restored at start-up: a deploy must not forget a call in progress or a bid a seller may
/// still post to. No personal data in a snapshot: contacts and consent stay in their own table.
enum LiveSnapshots {
    /// What a round needs besides its state to run on: its request, by reference to the config.
    struct RoundBasis: Codable {
        var auctionID: String
        var campaignID: String
        var sellerID: String
        var leadJSON: String
        var contactHash: String?
        var createdAtMs: Int64
        var tmaxMs: Int
        var source: String?

        init(_ context: RoundContext) {
            auctionID = context.auctionID
            campaignID = context.campaign.id
            sellerID = context.seller.id
            leadJSON = JSONValue.object(context.lead).serialized
            contactHash = context.contactHash
            createdAtMs = context.createdAtMs
            tmaxMs = context.tmaxMs
            source = context.source
        }

        /// The context again, on today's config; nil when its campaign or seller is gone.
        func context(config: ExchangeConfig, consent: JSONObject?) -> RoundContext? {
            guard let campaign = config.campaigns[campaignID], let seller = config.sellers.first(where: { $0.id == sellerID }),
                  let lead = (try? JSONValue.parse(Array(leadJSON.utf8)))?.objectValue
            else { return nil }
            return RoundContext(auctionID: auctionID, config: config, campaign: campaign, seller: seller, lead: lead, contact: nil,
                                consent: consent, contactHash: contactHash, arrival: .now, tmaxMs: tmaxMs, createdAtMs: createdAtMs,
                                source: source)
        }
    }

    struct Call: Codable {
        var basis: RoundBasis
        var lifecycle: CallLifecycle
        var slot: BuyerLedger.CallSlot?
        var attributionJSON: String?
        var routingUs: Int
        var releaseAtMs: Int64
    }

    struct Held: Codable {
        var basis: RoundBasis
        var round: AuctionRound
        var expiresAtMs: Int64
    }

    /// A live call's snapshot; it is kept a minute past its release time, for the sweep to end it.
    static func call(_ session: CallSession) -> LiveState? {
        let snapshot = Call(basis: RoundBasis(session.context), lifecycle: session.lifecycle, slot: session.slot,
                            attributionJSON: session.attributionJSON, routingUs: session.routingUs, releaseAtMs: session.releaseAtMs)
        guard let data = try? JSONEncoder().encode(snapshot) else { return nil }
        return LiveState(roundID: session.context.auctionID, kind: .call, snapshot: String(decoding: data, as: UTF8.self),
                         expiresAtMs: session.releaseAtMs + 60_000)
    }

    static func held(_ held: HeldBids.HeldRound) -> LiveState? {
        let snapshot = Held(basis: RoundBasis(held.context), round: held.round, expiresAtMs: held.expiresAtMs)
        guard let data = try? JSONEncoder().encode(snapshot) else { return nil }
        return LiveState(roundID: held.context.auctionID, kind: .held, snapshot: String(decoding: data, as: UTF8.self),
                         expiresAtMs: held.expiresAtMs)
    }
}

extension Exchange {
    /// Restores held bids and live calls (with their buyers' slots) from the store.
    /// Returns (held pings, live calls) restored.
    @discardableResult
    func restoreLiveState() async throws(StoreError) -> (held: Int, calls: Int) {
        let config = self.config
        var restored = (held: 0, calls: 0)
        let decoder = JSONDecoder()
        for state in try await store.liveStates(nowMs: nowMs) {
            let data = Data(state.snapshot.utf8)
            switch state.kind {
            case .held:
                let consent = state.consentJSON.flatMap { (try? JSONValue.parse(Array($0.utf8)))?.objectValue }
                guard let snapshot = try? decoder.decode(LiveSnapshots.Held.self, from: data),
                      let context = snapshot.basis.context(config: config, consent: consent)
                else {
                    logger.warning("held ping not restored", metadata: ["auction_id": "\(state.roundID)"])
                    continue
                }
                await held.hold(.init(round: snapshot.round, context: context, expiresAtMs: snapshot.expiresAtMs), id: state.roundID, nowMs: nowMs)
                restored.held += 1
            case .call:
                guard let snapshot = try? decoder.decode(LiveSnapshots.Call.self, from: data),
                      let context = snapshot.basis.context(config: config, consent: nil)
                else {
                    logger.warning("live call not restored", metadata: ["auction_id": "\(state.roundID)"])
                    continue
                }
                let session = CallSession(lifecycle: snapshot.lifecycle, context: context, slot: snapshot.slot,
                                          attributionJSON: snapshot.attributionJSON, routingUs: snapshot.routingUs,
                                          releaseAtMs: snapshot.releaseAtMs)
                if let slot = snapshot.slot {
                    ledger.restoreLiveCall(slot, callerHash: snapshot.basis.contactHash, at: now)
                }
                await calls.add(session, id: state.roundID)
                restored.calls += 1
            }
        }
        if restored.held + restored.calls > 0 {
            logger.notice("live state restored", metadata: ["held_pings": "\(restored.held)", "live_calls": "\(restored.calls)"])
        }
        return restored
    }
}
