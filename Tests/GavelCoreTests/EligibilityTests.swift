import Foundation
import Testing
@testable import GavelCore

struct EligibilityTests {
    let campaign = Campaign(id: "autos", vertical: "auto_insurance")
    let noon = Instant.date(Instant.wed20240710, hour: 12)  // Wednesday 12:00 UTC

    func buyer(
        verticals: Set<String> = [], filters: BuyerFilters = BuyerFilters(), paused: Bool = false
    ) -> Buyer {
        Buyer(id: "b1", campaigns: ["autos"], verticals: verticals, ping: Endpoint(url: "http://127.0.0.1:1/ping"),
              post: Endpoint(url: "http://127.0.0.1:1/post"), filters: filters, paused: paused)
    }

    func lead(_ fields: JSONValue) -> Eligibility.Lead { Eligibility.Lead(fields: fields.objectValue!) }

    func exclusion(_ buyer: Buyer, _ lead: Eligibility.Lead, at date: Date? = nil,
                   capped: Bool = false, duplicate: Bool = false, unhealthy: Bool = false) -> ReasonCode? {
        Eligibility.exclusion(of: buyer, campaign: campaign, lead: lead, at: date ?? noon,
                              isCapped: capped, isDuplicate: duplicate, isUnhealthy: unhealthy)
    }

    @Test func eligibleWithoutFilters() {
        #expect(exclusion(buyer(), lead(["zip": "94107", "state": "CA"])) == nil)
        #expect(exclusion(buyer(), lead([:])) == nil)
    }

    @Test func leadNormalisesStateAndZip() {
        let fromString = lead(["state": "ca", "zip": "94107"])
        #expect(fromString.state == "CA")
        #expect(fromString.zip == "94107")
        let fromNumber = lead(["zip": 94107])
        #expect(fromNumber.zip == "94107")
        #expect(fromNumber.state == nil)
        #expect(lead(["state": 5]).state == nil)
    }

    @Test func paused() {
        #expect(exclusion(buyer(paused: true), lead(["state": "CA"])) == .paused)
    }

    @Test func vertical() {
        #expect(exclusion(buyer(verticals: ["solar"]), lead([:])) == .filteredVertical)
        #expect(exclusion(buyer(verticals: ["solar", "auto_insurance"]), lead([:])) == nil)
    }

    @Test func states() {
        let filtered = buyer(filters: BuyerFilters(states: ["CA", "TX"]))
        #expect(exclusion(filtered, lead(["state": "CA"])) == nil)
        #expect(exclusion(filtered, lead(["state": "tx"])) == nil)
        #expect(exclusion(filtered, lead(["state": "NY"])) == .filteredGeo)
        #expect(exclusion(filtered, lead(["zip": "94107"])) == .filteredGeo)  // no state at all
    }

    @Test func zipPrefixes() {
        let filtered = buyer(filters: BuyerFilters(zips: ["941", "10001"]))
        #expect(exclusion(filtered, lead(["zip": "94107"])) == nil)
        #expect(exclusion(filtered, lead(["zip": "10001"])) == nil)
        #expect(exclusion(filtered, lead(["zip": 94110])) == nil)
        #expect(exclusion(filtered, lead(["zip": "95107"])) == .filteredGeo)
        #expect(exclusion(filtered, lead(["zip": "10002"])) == .filteredGeo)
        #expect(exclusion(filtered, lead(["zip": "94"])) == .filteredGeo)  // shorter than the prefix
        #expect(exclusion(filtered, lead(["state": "CA"])) == .filteredGeo)  // no zip
    }

    @Test func ruleOneOf() {
        let filtered = buyer(filters: BuyerFilters(rules: [FieldRule(field: "homeowner", oneOf: ["yes", "true"])]))
        #expect(exclusion(filtered, lead(["homeowner": "yes"])) == nil)
        #expect(exclusion(filtered, lead(["homeowner": true])) == nil)
        #expect(exclusion(filtered, lead(["homeowner": "no"])) == .filteredRule)
        #expect(exclusion(filtered, lead(["homeowner": false])) == .filteredRule)
        #expect(exclusion(filtered, lead(["homeowner": "Yes"])) == .filteredRule)  // case-sensitive text
    }

    @Test func ruleMinMax() {
        let filtered = buyer(filters: BuyerFilters(rules: [FieldRule(field: "bill", min: Money(100), max: Money(500))]))
        #expect(exclusion(filtered, lead(["bill": 100])) == nil)
        #expect(exclusion(filtered, lead(["bill": "250.50"])) == nil)
        #expect(exclusion(filtered, lead(["bill": .number("500")])) == nil)
        #expect(exclusion(filtered, lead(["bill": .number("99.9999")])) == .filteredRule)
        #expect(exclusion(filtered, lead(["bill": .number("500.0001")])) == .filteredRule)
        #expect(exclusion(filtered, lead(["bill": "lots"])) == .filteredRule)
        #expect(exclusion(filtered, lead(["bill": .number("1e3")])) == .filteredRule)  // not a plain decimal
    }

    @Test func ruleWithNegativeBounds() {
        let filtered = buyer(filters: BuyerFilters(rules: [FieldRule(field: "delta", min: Money(-10))]))
        #expect(exclusion(filtered, lead(["delta": .number("-5")])) == nil)
        #expect(exclusion(filtered, lead(["delta": .number("-10.5")])) == .filteredRule)
    }

    @Test func missingOrNullFieldFailsTheRule() {
        let filtered = buyer(filters: BuyerFilters(rules: [FieldRule(field: "tort", oneOf: ["roundup"])]))
        #expect(exclusion(filtered, lead(["state": "CA"])) == .filteredRule)
        #expect(exclusion(filtered, lead(["tort": nil])) == .filteredRule)
        #expect(exclusion(filtered, lead(["tort": ["roundup"]])) == .filteredRule)  // a list is not a scalar
        let minOnly = buyer(filters: BuyerFilters(rules: [FieldRule(field: "age", min: Money(18))]))
        #expect(exclusion(minOnly, lead([:])) == .filteredRule)
    }

    @Test func allRulesMustPass() {
        let filtered = buyer(filters: BuyerFilters(rules: [
            FieldRule(field: "homeowner", oneOf: ["yes"]), FieldRule(field: "bill", min: Money(100)),
        ]))
        #expect(exclusion(filtered, lead(["homeowner": "yes", "bill": 150])) == nil)
        #expect(exclusion(filtered, lead(["homeowner": "yes", "bill": 50])) == .filteredRule)
        #expect(exclusion(filtered, lead(["homeowner": "no", "bill": 150])) == .filteredRule)
    }

    @Test func fieldRuleAcceptsDirectly() {
        let rule = FieldRule(field: "x", oneOf: ["1", "2"], min: Money(2))
        #expect(rule.accepts(.number("2")))
        #expect(!rule.accepts(.number("1")))  // in one_of but below min
        #expect(!rule.accepts(.number("3")))  // above min but not in one_of
        #expect(!rule.accepts(nil))
        #expect(!rule.accepts(.null))
        #expect(!rule.accepts(.object(JSONObject())))
    }

    @Test func schedule() {
        let hours = Schedule(timeZone: TimeZone(identifier: "America/New_York")!, startMinute: 9 * 60, endMinute: 17 * 60)
        let filtered = buyer(filters: BuyerFilters(schedule: hours))
        // 12:00Z = 08:00 EDT: closed. 14:00Z = 10:00 EDT: open.
        #expect(exclusion(filtered, lead([:]), at: Instant.date(Instant.wed20240710, hour: 12)) == .filteredSchedule)
        #expect(exclusion(filtered, lead([:]), at: Instant.date(Instant.wed20240710, hour: 14)) == nil)
    }

    @Test func sharedStateFlags() {
        #expect(exclusion(buyer(), lead([:]), duplicate: true) == .duplicate)
        #expect(exclusion(buyer(), lead([:]), capped: true) == .capped)
        #expect(exclusion(buyer(), lead([:]), unhealthy: true) == .unhealthy)
    }

    @Test func orderOfChecks() {
        let closed = Schedule(timeZone: TimeZone(identifier: "UTC")!, weekdays: [])
        let everything = BuyerFilters(
            states: ["TX"], zips: ["7"], schedule: closed, rules: [FieldRule(field: "tort", oneOf: ["roundup"])])
        let badLead = lead(["state": "CA", "zip": "94107"])
        // paused > vertical > geo > rule > schedule > duplicate > capped > unhealthy
        #expect(exclusion(buyer(verticals: ["solar"], filters: everything, paused: true), badLead,
                          capped: true, duplicate: true, unhealthy: true) == .paused)
        #expect(exclusion(buyer(verticals: ["solar"], filters: everything), badLead,
                          capped: true, duplicate: true, unhealthy: true) == .filteredVertical)
        #expect(exclusion(buyer(filters: everything), badLead, capped: true, duplicate: true, unhealthy: true) == .filteredGeo)
        let geoOK = lead(["state": "TX", "zip": "75001"])
        #expect(exclusion(buyer(filters: everything), geoOK, capped: true, duplicate: true, unhealthy: true) == .filteredRule)
        let ruleOK = lead(["state": "TX", "zip": "75001", "tort": "roundup"])
        #expect(exclusion(buyer(filters: everything), ruleOK, capped: true, duplicate: true, unhealthy: true) == .filteredSchedule)
        var open = everything
        open.schedule = nil
        #expect(exclusion(buyer(filters: open), ruleOK, capped: true, duplicate: true, unhealthy: true) == .duplicate)
        #expect(exclusion(buyer(filters: open), ruleOK, capped: true, unhealthy: true) == .capped)
        #expect(exclusion(buyer(filters: open), ruleOK, unhealthy: true) == .unhealthy)
        #expect(exclusion(buyer(filters: open), ruleOK) == nil)
    }

    @Test func exclusionReasonsAreExclusions() {
        for reason in [ReasonCode.paused, .filteredVertical, .filteredGeo, .filteredRule, .filteredSchedule, .duplicate, .capped, .unhealthy] {
            #expect(reason.isExclusion, "\(reason)")
        }
        for reason in [ReasonCode.sold, .outbid, .noBid, .belowFloor, .timeout, .expired, .budgetExhausted, .postRejected] {
            #expect(!reason.isExclusion, "\(reason)")
        }
        #expect(ReasonCode.belowFloor.rawValue == "below_floor")
        #expect(ReasonCode.budgetExhausted.rawValue == "budget_exhausted")
    }
}
