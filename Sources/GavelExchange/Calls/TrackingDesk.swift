import Foundation
import GavelCore
import GavelStore

/// Dynamic number insertion: hands each landing-page visitor a tracking number from its
/// campaign's pool for its traffic source, reserves it for a while, and attributes a call to the
/// visitor's session when that number is dialed.
public actor TrackingDesk {
    /// What the snippet reports of a visit.
    public struct Visit: Sendable, Hashable, Codable {
        public var source: String
        public var medium: String?
        public var keyword: String?
        public var gclid: String?
        public var referrer: String?
        public var landingURL: String?

        public init(source: String, medium: String? = nil, keyword: String? = nil, gclid: String? = nil,
                    referrer: String? = nil, landingURL: String? = nil) {
            self.source = source
            self.medium = medium
            self.keyword = keyword
            self.gclid = gclid
            self.referrer = referrer
            self.landingURL = landingURL
        }
    }

    public struct Session: Sendable, Hashable {
        public var id: String
        public var campaignID: String
        public var visit: Visit
        public var number: String
        /// Whether the number is reserved for this session alone (false: the source's shared fallback number).
        public var exclusive: Bool
        public var expiresAt: Date
    }

    /// Where a call came from, stored with the call.
    public struct Attribution: Sendable, Hashable {
        /// `session`: the number was reserved for one visitor; `source`: a pool or fallback number of a source.
        public var match: String
        public var campaignID: String
        public var source: String
        public var sessionID: String?
        public var medium: String?
        public var keyword: String?
        public var gclid: String?
        public var landingURL: String?
        public var number: String

        public var json: JSONValue {
            var object = JSONObject()
            object["match"] = .string(match)
            object["campaign"] = .string(campaignID)
            object["source"] = .string(source)
            object["number"] = .string(number)
            if let sessionID { object["session_id"] = .string(sessionID) }
            if let medium { object["medium"] = .string(medium) }
            if let keyword { object["keyword"] = .string(keyword) }
            if let gclid { object["gclid"] = .string(gclid) }
            if let landingURL { object["landing_url"] = .string(landingURL) }
            return .object(object)
        }
    }

    /// Number -> the session holding it.
    private var reservations: [String: Session] = [:]

    public init() {}

    /// A number for a visit: a free pool number of its source (or the `default` pool), reserved
    /// for `reservationS`; when the pool is exhausted, the source's fallback number, shared.
    public func assign(campaign: Campaign, tracking: TrackingNumbers, visit: Visit, at now: Date) -> Session {
        let source = tracking.pools[visit.source] != nil || tracking.fallbacks[visit.source] != nil ? visit.source : "default"
        let expiresAt = now.addingTimeInterval(Double(tracking.reservationS))
        let id = AuctionID.make(prefix: "dni_", nowMs: Int64(now.timeIntervalSince1970 * 1000))
        var normalized = visit
        normalized.source = visit.source
        for number in tracking.pools[source] ?? [] {
            if let holder = reservations[number], holder.expiresAt > now { continue }
            let session = Session(id: id, campaignID: campaign.id, visit: normalized, number: number, exclusive: true, expiresAt: expiresAt)
            reservations[number] = session
            return session
        }
        let fallback = tracking.fallbacks[source] ?? tracking.fallbacks["default"] ?? ""
        return Session(id: id, campaignID: campaign.id, visit: normalized, number: fallback, exclusive: false, expiresAt: expiresAt)
    }

    /// The attribution of a call to `dialed`: the visitor session holding it, else the source the
    /// number belongs to; nil for a number that is not a tracking number.
    public func attribute(dialed: String, config: ExchangeConfig, at now: Date) -> Attribution? {
        if let session = reservations[dialed], session.expiresAt > now {
            return Attribution(
                match: "session", campaignID: session.campaignID, source: session.visit.source, sessionID: session.id,
                medium: session.visit.medium, keyword: session.visit.keyword, gclid: session.visit.gclid,
                landingURL: session.visit.landingURL, number: dialed
            )
        }
        guard let campaignID = config.campaignByTrackingNumber[dialed], let tracking = config.campaigns[campaignID]?.tracking else {
            return nil
        }
        let source = tracking.pools.first { $0.value.contains(dialed) }?.key
            ?? tracking.fallbacks.first { $0.value == dialed }?.key ?? "default"
        return Attribution(match: "source", campaignID: campaignID, source: source, number: dialed)
    }

    /// Reservations that were live before a restart.
    public func restore(_ sessions: [Session]) {
        for session in sessions { reservations[session.number] = session }
    }

    /// Drops reservations that have expired.
    public func sweep(at now: Date) {
        reservations = reservations.filter { $0.value.expiresAt > now }
    }
}

extension Exchange {
    /// A tracking number for a landing-page visit, reserved in memory and written through to the
    /// store (a reservation survives a restart, so the call it brings is still attributed).
    public func assignTrackingNumber(campaign: Campaign, tracking numbers: TrackingNumbers, visit: TrackingDesk.Visit,
                                     at date: Date? = nil) async -> TrackingDesk.Session {
        let now = date ?? self.now
        if let cluster { return await assignSharedNumber(cluster, campaign: campaign, tracking: numbers, visit: visit, at: now) }
        let session = await tracking.assign(campaign: campaign, tracking: numbers, visit: visit, at: now)
        guard session.exclusive, let visitJSON = try? JSONEncoder().encode(visit) else { return session }
        do {
            try await store.record(StoredDNISession(
                number: session.number, sessionID: session.id, campaignID: session.campaignID,
                visitJSON: String(decoding: visitJSON, as: UTF8.self), expiresAtMs: Int64(session.expiresAt.timeIntervalSince1970 * 1000)))
        } catch {
            // The number still works until a restart; attribution after one falls back to its source.
            logger.warning("tracking number reservation not stored", metadata: ["error": "\(error)"])
        }
        return session
    }

    /// Tracking-number reservations from before a restart.
    func restoreTrackingNumbers() async throws(StoreError) {
        let decoder = JSONDecoder()
        let sessions = try await store.dniSessions(nowMs: nowMs).compactMap { stored -> TrackingDesk.Session? in
            guard let visit = try? decoder.decode(TrackingDesk.Visit.self, from: Data(stored.visitJSON.utf8)) else { return nil }
            return TrackingDesk.Session(id: stored.sessionID, campaignID: stored.campaignID, visit: visit, number: stored.number,
                                        exclusive: true, expiresAt: Date(timeIntervalSince1970: Double(stored.expiresAtMs) / 1000))
        }
        await tracking.restore(sessions)
    }
}
