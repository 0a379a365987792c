import Foundation
import GavelCore

/// Phone lines in YAML: a call campaign's inbound numbers, fallback and dial options, and
/// `telephony.yaml` (provider accounts, public URL). See the README, "Phone lines".
extension ConfigLoader {
    static let phoneLineKeys: Set<String> = ["inbound_numbers", "fallback_number", "dial_timeout_s", "caller_id", "record_calls", "no_buyer_message"]

    static func readPhoneLines(_ campaign: YAMLField, kind: AuctionKind) -> CampaignPhoneLines {
        var lines = CampaignPhoneLines()
        let present = phoneLineKeys.filter { campaign.child($0).isPresent }.sorted()
        if kind != .call {
            for key in present { campaign.child(key).problem("phone lines belong to call campaigns") }
            return lines
        }
        func number(_ field: YAMLField) -> String? {
            guard let text = field.string(required: true) else { return nil }
            guard let number = PhoneNumber.e164(text) else {
                field.problem("must be a phone number in E.164 (+18005550100), got \"\(text)\"")
                return nil
            }
            return number
        }
        for element in campaign.child("inbound_numbers").elements() {
            guard element.mapping(known: ["number", "seller"]) else { continue }
            let seller = element.child("seller").string(required: true)
            guard let line = number(element.child("number")), let seller else { continue }
            if lines.inboundNumbers[line] != nil { element.child("number").problem("\(line) is listed twice") }
            lines.inboundNumbers[line] = seller
        }
        lines.trackingSeller = campaign.child("tracking").child("seller").string()
        if campaign.child("fallback_number").isPresent { lines.fallbackNumber = number(campaign.child("fallback_number")) }
        lines.dialTimeoutS = campaign.child("dial_timeout_s").int(range: 5...600) ?? lines.dialTimeoutS
        if let callerID = campaign.child("caller_id").string() {
            if callerID == "caller" { lines.callerID = nil } else if let number = PhoneNumber.e164(callerID) { lines.callerID = number } else {
                campaign.child("caller_id").problem("must be caller (the caller's own number) or a phone number in E.164, got \"\(callerID)\"")
            }
        }
        lines.record = campaign.child("record_calls").bool() ?? false
        if let message = campaign.child("no_buyer_message").string() {
            if message.isEmpty || message.count > 1000 { campaign.child("no_buyer_message").problem("must be 1 to 1000 characters") }
            lines.noBuyerMessage = message
        }
        return lines
    }

    /// Sellers named by phone lines exist and may sell into the campaign; a number leads to one campaign.
    static func checkPhoneLines(campaigns: [Located<Campaign>], sellers: [Located<Seller>], log: ProblemLog) {
        let sellersByID = Dictionary(sellers.map { ($0.value.id, $0.value) }, uniquingKeysWith: { first, _ in first })
        var owner: [String: String] = [:]
        for located in campaigns {
            let campaign = located.value
            func check(_ sellerID: String, at field: YAMLField) {
                guard let seller = sellersByID[sellerID] else {
                    field.problem("unknown seller \"\(sellerID)\"")
                    return
                }
                if !seller.campaigns.contains(campaign.id) { field.problem("seller \(sellerID) may not sell into \(campaign.id)") }
            }
            for (index, element) in located.field.child("inbound_numbers").elements().enumerated() {
                guard let number = element.child("number").string().flatMap(PhoneNumber.e164) else { continue }
                if let seller = element.child("seller").string() { check(seller, at: element.child("seller")) }
                if let other = owner[number], other != campaign.id {
                    element.child("number").problem("\(number) already leads to campaign \(other)")
                }
                if campaign.tracking.map({ $0.pools.values.joined().contains(number) || $0.fallbacks.values.contains(number) }) ?? false {
                    located.field.child("inbound_numbers").problem("inbound_numbers[\(index)] \(number) is also a tracking number", at: element.path)
                }
                owner[number] = campaign.id
            }
            if let seller = campaign.phoneLines.trackingSeller { check(seller, at: located.field.child("tracking").child("seller")) }
        }
    }

    /// `telephony.yaml`, optional: without it no webhook is accepted (every one gets 403).
    static func readTelephony(directory: String, log: ProblemLog) -> TelephonySettings {
        let path = (directory as NSString).appendingPathComponent("telephony.yaml")
        guard FileManager.default.fileExists(atPath: path), let root = document(directory: directory, name: "telephony.yaml", log: log) else {
            return TelephonySettings()
        }
        var settings = TelephonySettings()
        guard root.mapping(known: ["public_base_url", "twilio"]) else { return settings }
        if let base = root.child("public_base_url").string() {
            if (base.hasPrefix("http://") || base.hasPrefix("https://")) && URL(string: base)?.host != nil && !base.contains("?") {
                settings.publicBaseURL = base.hasSuffix("/") ? String(base.dropLast()) : base
            } else {
                root.child("public_base_url").problem("must be an http:// or https:// URL without a query, got \"\(base)\"")
            }
        }
        let twilio = root.child("twilio")
        if twilio.isPresent, twilio.mapping(known: ["accounts"]) {
            for element in twilio.child("accounts").elements() {
                guard element.mapping(known: ["account_sid", "auth_token"]) else { continue }
                let sid = element.child("account_sid").string(required: true)
                let token = element.child("auth_token").string(required: true)
                if let sid, !(sid.hasPrefix("AC") && sid.count == 34) {
                    element.child("account_sid").problem("must be a Twilio account SID (AC and 32 hex digits), got \"\(sid)\"")
                }
                if let token, token.count < 16 { element.child("auth_token").problem("must be at least 16 characters") }
                if let sid, let token {
                    if settings.twilioAccounts[sid] != nil { element.child("account_sid").problem("is listed twice") }
                    settings.twilioAccounts[sid] = token
                }
            }
        }
        return settings
    }
}
