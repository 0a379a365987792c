import Foundation

/// The checks made before a buyer is pinged, cheapest first. Caps, duplicates and health need
/// shared state, so the caller passes their answers in.
public enum Eligibility {
    public struct Lead: Sendable {
        public var state: String?
        public var zip: String?
        public var fields: JSONObject

        public init(fields: JSONObject) {
            self.fields = fields
            self.state = fields["state"]?.stringValue?.uppercased()
            self.zip = fields["zip"]?.stringValue ?? fields["zip"]?.numberText
        }
    }

    /// The reason `buyer` is excluded from a round of `campaign`, or nil when it is eligible.
    /// `isPaused`: the buyer paused itself in the portal (`paused: true` in its YAML pauses it too).
    public static func exclusion(
        of buyer: Buyer, campaign: Campaign, lead: Lead, at date: Date,
        isPaused: Bool = false, isCapped: Bool = false, isDuplicate: Bool = false, isUnhealthy: Bool = false
    ) -> ReasonCode? {
        if buyer.paused || isPaused { return .paused }
        if !buyer.verticals.isEmpty, !buyer.verticals.contains(campaign.vertical) { return .filteredVertical }
        let filters = buyer.filters
        if !filters.states.isEmpty {
            guard let state = lead.state, filters.states.contains(state) else { return .filteredGeo }
        }
        if !filters.zips.isEmpty {
            guard let zip = lead.zip, filters.zips.contains(where: { zip.hasPrefix($0) }) else { return .filteredGeo }
        }
        for rule in filters.rules where !rule.accepts(lead.fields[rule.field]) { return .filteredRule }
        if let schedule = filters.schedule, !schedule.isOpen(at: date) { return .filteredSchedule }
        if isDuplicate { return .duplicate }
        if isCapped { return .capped }
        if isUnhealthy { return .unhealthy }
        return nil
    }
}
