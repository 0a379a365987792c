import Foundation
import GavelCore
import Testing
@testable import GavelConfig

/// Phone lines in config: campaigns' inbound numbers and `telephony.yaml`; every mistake is one
/// `FILE: path: message` line.
struct PhoneLinesConfigTests {
    static let callCampaign = """

          - id: calls
            kind: call
            vertical: home_services
            tmax_ms: 2000
            inbound_numbers: [{number: "+18005550300", seller: seller-one}]
            fallback_number: "+18005550999"
            caller_id: "+18005550301"
            record_calls: true
            tracking: {seller: seller-one, pools: {default: ["+18005550401"]}, fallbacks: {default: "+18005550499"}}
        """

    func problems(campaigns extra: String, sellerCampaigns: String = "[autos, tort, calls]", telephony: String? = nil) throws -> (ExchangeConfig?, [String]) {
        var fixture = ConfigFixture()
        fixture.campaigns += extra
        fixture.sellers = fixture.sellers.replacingOccurrences(of: "campaigns: [autos, tort]", with: "campaigns: \(sellerCampaigns)")
        let directory = try fixture.write()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        if let telephony { try telephony.write(toFile: directory + "/telephony.yaml", atomically: true, encoding: .utf8) }
        do { return (try ConfigLoader.load(directory: directory), []) } catch { return (nil, error.problems.map(\.description)) }
    }

    @Test func aCampaignsPhoneLinesAndTheAccountsLoad() throws {
        let (config, problems) = try problems(
            campaigns: Self.callCampaign,
            telephony: "public_base_url: https://gavel.example.com/\ntwilio:\n  accounts:\n    - {account_sid: AC\(String(repeating: "0", count: 32)), auth_token: \"${TOKEN:-a-token-of-sixteen-chars}\"}\n")
        #expect(problems.isEmpty, "\(problems)")
        let loaded = try #require(config)
        #expect(loaded.telephony.publicBaseURL == "https://gavel.example.com")
        #expect(loaded.telephony.twilioAccounts["AC" + String(repeating: "0", count: 32)] == "a-token-of-sixteen-chars")
        #expect(loaded.phoneLine(dialled: "+18005550300") == PhoneLine(campaignID: "calls", sellerID: "seller-one"))
        #expect(loaded.phoneLine(dialled: "+18005550401") == PhoneLine(campaignID: "calls", sellerID: "seller-one"))
        #expect(loaded.phoneLine(dialled: "+18005550000") == nil)
        let lines = try #require(loaded.campaigns["calls"]).phoneLines
        #expect(lines.fallbackNumber == "+18005550999")
        #expect(lines.callerID == "+18005550301")
        #expect(lines.record)
    }

    @Test func mistakesAreNamed() throws {
        let (_, unknownSeller) = try problems(campaigns: Self.callCampaign.replacingOccurrences(of: "seller: seller-one}]", with: "seller: nobody}]"))
        #expect(unknownSeller == ["campaigns.yaml: campaigns[2].inbound_numbers[0].seller: unknown seller \"nobody\""])
        let (_, notAllowed) = try problems(campaigns: Self.callCampaign, sellerCampaigns: "[autos, tort]")
        #expect(notAllowed.contains("campaigns.yaml: campaigns[2].inbound_numbers[0].seller: seller seller-one may not sell into calls"))
        let (_, badNumber) = try problems(campaigns: Self.callCampaign.replacingOccurrences(of: "fallback_number: \"+18005550999\"", with: "fallback_number: call-us"))
        #expect(badNumber == ["campaigns.yaml: campaigns[2].fallback_number: must be a phone number in E.164 (+18005550100), got \"call-us\""])
        let (_, badAccount) = try problems(campaigns: Self.callCampaign, telephony: "twilio:\n  accounts:\n    - {account_sid: XY123, auth_token: short}\n")
        #expect(badAccount.contains { $0.hasPrefix("telephony.yaml: twilio.accounts[0].account_sid: must be a Twilio account SID") })
        #expect(badAccount.contains("telephony.yaml: twilio.accounts[0].auth_token: must be at least 16 characters"))
        let (_, badBase) = try problems(campaigns: Self.callCampaign, telephony: "public_base_url: ftp://x\n")
        #expect(badBase.first?.hasPrefix("telephony.yaml: public_base_url: must be an http:// or https:// URL") == true)
    }

    @Test func phoneLinesBelongToCallCampaigns() throws {
        let (_, problems) = try problems(campaigns: "\n  - {id: leadline, vertical: solar, tmax_ms: 800, fallback_number: \"+18005550999\"}", sellerCampaigns: "[autos, tort]")
        #expect(problems == ["campaigns.yaml: campaigns[2].fallback_number: phone lines belong to call campaigns"])
    }
}
