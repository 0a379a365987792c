import Foundation
import GavelCore
import GavelExchange
import GavelServer
import GavelStore
import Synchronization
import Testing

/// A wall clock the test sets: sales on chosen days, return windows that close.
final class SetWallClock: WallClock {
    private let current: Mutex<Int64>
    init(ms: Int64) { current = Mutex(ms) }
    var nowMs: Int64 { current.withLock { $0 } }
    func set(ms: Int64) { current.withLock { $0 = ms } }
    func advance(seconds: Int64) { current.withLock { $0 += seconds * 1000 } }
}

/// The books through the real server and SQLite: returns (window, twice, someone else's round,
/// policies, budget, estimates, restart), the reports (JSON, CSV, grouping, time zones, bad
/// parameters, keys) and purchases (pages, contacts, CSV).
@Suite(.serialized)
struct BooksAPITests {
    static let operatorKey = "test-key-operator-one"
    static let alphaKey = "test-key-buyer-alpha"
    static let betaKey = "test-key-buyer-beta"

    static let campaigns = """
        campaigns:
          - {id: autos, kind: lead, vertical: auto_insurance, tmax_ms: 5000, ping_timeout_ms: 3000, floor: 1.00, payout: {share: 0.5}, required_fields: [zip, state]}
          - {id: tort, kind: lead, vertical: legal, tmax_ms: 5000, floor: 1.00, return_window_days: 2, return_policy: keep_payout}
          - {id: tiny, kind: lead, vertical: auto_insurance, tmax_ms: 300, ping_timeout_ms: 200}
          - {id: calls, kind: call, vertical: home_services, tmax_ms: 3000, ping_timeout_ms: 2000, floor: 1.00, payout: {share: 0.5}, max_call_s: 60}
        """

    /// 2026-03-10T23:30:00Z: 19:30 in New York (EDT), the evening before the next UTC day.
    static let eveningMs: Int64 = 1_773_185_400_000

    /// An exchange whose buyers `alpha` (autos, 10.00) and `beta` (tort, 20.00) have keys, with
    /// an operator, on a clock the test sets; serving HTTP.
    static func harness(clock: SetWallClock, extra: [TestExchange.BuyerSpec] = []) async throws -> TestExchange {
        let harness = try await TestExchange(campaignYAML: campaigns, buyers: [
            bidder("alpha", bid: "10.00", yaml: "api_key: \(alphaKey)\ncaps: {daily_budget: 100.00}"),
            TestExchange.BuyerSpec(id: "beta", behavior: bidder("beta", bid: "20.00").behavior, yaml: "api_key: \(betaKey)", campaign: "tort"),
        ] + extra)
        try "operators:\n  - {id: ops, api_key: \(operatorKey)}\n"
            .write(toFile: harness.configPath + "/operators.yaml", atomically: true, encoding: .utf8)
        harness.configureSettings = { $0.exchange.clock = clock }
        await harness.stopServer()
        try await harness.openServer()
        try await harness.startHTTP()
        return harness
    }

    func sell(_ harness: TestExchange, campaign: String = "autos", email: String = "jo@example.com") async throws -> String {
        let answer = try await harness.http(.post, "/v1/leads", body: TestExchange.lead(email: email, campaign: campaign))
        #expect(answer.json["status"] == "sold")
        return try #require(answer.json["auction_id"]?.stringValue)
    }

    func returnBody(_ id: String, reason: String = "invalid_phone", note: String? = "number disconnected") -> String {
        #"{"auction_id": "\#(id)", "reason": "\#(reason)""# + (note.map { #", "note": "\#($0)"}"# } ?? "}")
    }

    func daySpend(_ harness: TestExchange, buyer: String, day: String) async -> Money {
        harness.exchange.ledger.usage(buyerID: buyer, window: "D:\(day)").spend
    }

    @Test func aReturnCreditsTheBuyerReversesThePayoutOnceAndOnlyWithinTheWindow() async throws {
        let clock = SetWallClock(ms: Self.eveningMs)
        let harness = try await Self.harness(clock: clock)
        let sold = try await sell(harness)
        #expect(await daySpend(harness, buyer: "alpha", day: "2026-03-10") == Money(10))
        let before = harness.exchange.estimates.counts(buyerID: "alpha", kind: .lead)

        // Only the buyer that paid, and only with a buyer key.
        #expect(try await harness.http(.post, "/v1/returns", body: returnBody(sold), key: Self.betaKey).status == 404)
        let seller = try await harness.http(.post, "/v1/returns", body: returnBody(sold))
        #expect(seller.status == 401)
        #expect(seller.json["error"]?["code"] == "unauthorized")
        #expect(try await harness.http(.post, "/v1/returns", body: returnBody(sold), key: nil).status == 401)
        #expect(try await harness.http(.post, "/v1/returns", body: returnBody("auc_unknown"), key: Self.alphaKey).status == 404)
        // Fields are checked, each named.
        let badReason = try await harness.http(.post, "/v1/returns", body: returnBody(sold, reason: "changed_mind"), key: Self.alphaKey)
        #expect(badReason.status == 422)
        #expect(badReason.json["error"]?["field"] == "reason")
        let longNote = try await harness.http(.post, "/v1/returns", body: returnBody(sold, note: String(repeating: "x", count: 1001)), key: Self.alphaKey)
        #expect(longNote.json["error"]?["field"] == "note")
        let missing = try await harness.http(.post, "/v1/returns", body: #"{"reason": "other"}"#, key: Self.alphaKey)
        #expect(missing.status == 422)
        #expect(missing.json["error"]?["field"] == "auction_id")

        // The day after, within the window: credited, the payout reversed (reverse_payout, the default).
        clock.advance(seconds: 86_400)
        let returned = try await harness.http(.post, "/v1/returns", body: returnBody(sold), key: Self.alphaKey,
                                              headers: [("Idempotency-Key", "return-1")])
        #expect(returned.status == 200)
        #expect(returned.json["auction_id"]?.stringValue == sold)
        #expect(returned.json["credited"] == JSONValue(Money(10)))
        #expect(returned.json["payout_reversed"] == JSONValue(Money(5)))
        #expect(returned.json["return_id"]?.stringValue?.hasPrefix("ret_") == true)
        // The price is back in the budget of the sale's day; the estimate counts a failure.
        #expect(await daySpend(harness, buyer: "alpha", day: "2026-03-10") == .zero)
        #expect(harness.exchange.ledger.usage(buyerID: "alpha", window: "D:2026-03-10").count == 1)
        #expect(harness.exchange.estimates.counts(buyerID: "alpha", kind: .lead).successes == before.successes - 1)
        // A repeat with the key gets the first answer; without it, 409.
        let replay = try await harness.http(.post, "/v1/returns", body: returnBody(sold), key: Self.alphaKey,
                                            headers: [("Idempotency-Key", "return-1")])
        #expect(replay.json == returned.json)
        let twice = try await harness.http(.post, "/v1/returns", body: returnBody(sold), key: Self.alphaKey)
        #expect(twice.status == 409)
        #expect(twice.json["error"]?["code"] == "already_returned")

        // tort keeps the seller's payout and closes its window after 2 days.
        let kept = try await sell(harness, campaign: "tort")
        let keptReturn = try await harness.http(.post, "/v1/returns", body: returnBody(kept, reason: "duplicate", note: nil), key: Self.betaKey)
        #expect(keptReturn.json["credited"] == JSONValue(Money(20)))
        #expect(keptReturn.json["payout_reversed"] == JSONValue(Money.zero))
        let late = try await sell(harness, campaign: "tort")
        clock.advance(seconds: 2 * 86_400)
        let closed = try await harness.http(.post, "/v1/returns", body: returnBody(late), key: Self.betaKey)
        #expect(closed.status == 422)
        #expect(closed.json["error"]?["code"] == "return_window_closed")

        // The books: two sales of 20 and one of 10 ran on 03-10 and 03-11 (UTC); returns on 03-11.
        let pnl = try await harness.http(.get, "/v1/reports/pnl?from=2026-03-10&to=2026-03-13", key: Self.operatorKey)
        #expect(pnl.status == 200)
        let totals = try #require(pnl.json["totals"])
        #expect(totals["rounds"] == 3)
        #expect(totals["sold"] == 3)
        #expect(totals["revenue"] == JSONValue(Money(50)))
        #expect(totals["payout"] == JSONValue(Money(5 + 14 + 14)))
        #expect(totals["returned"] == JSONValue(Money(30)))
        #expect(totals["payout_reversed"] == JSONValue(Money(5)))
        #expect(totals["margin"] == JSONValue(Money(50 - 30 - 33 + 5)))

        // After a restart: the budget credit and the estimate's return are still there.
        await harness.stopServer()
        try await harness.openServer()
        #expect(await daySpend(harness, buyer: "alpha", day: "2026-03-10") == .zero)
        #expect(harness.exchange.estimates.counts(buyerID: "alpha", kind: .lead).successes == 0)
        #expect(harness.exchange.estimates.counts(buyerID: "beta", kind: .lead).successes == 1)
        await harness.shutdown()
    }

    @Test func profitAndLossGroupsByTimeZoneDimensionsAndFormat() async throws {
        let clock = SetWallClock(ms: Self.eveningMs)
        let harness = try await Self.harness(clock: clock)
        _ = try await sell(harness)                                 // 03-10 19:30 New York, 23:30 UTC
        clock.set(ms: Self.eveningMs + 3_600_000)
        _ = try await sell(harness)                                 // 03-10 20:30 New York, 03-11 00:30 UTC
        let unsold = try await harness.http(.post, "/v1/leads", body: TestExchange.lead(campaign: "tiny"))
        #expect(unsold.json["status"] == "unsold")

        let utc = try await harness.http(.get, "/v1/reports/pnl?from=2026-03-10&to=2026-03-10", key: Self.operatorKey)
        #expect(utc.json["rows"]?.booksItems?.first?["period"] == "2026-03-10")
        #expect(utc.json["totals"]?["rounds"] == 1)
        let newYork = try await harness.http(.get, "/v1/reports/pnl?from=2026-03-10&to=2026-03-10&tz=America/New_York", key: Self.operatorKey)
        #expect(newYork.json["totals"]?["rounds"] == 3)
        #expect(newYork.json["totals"]?["revenue"] == JSONValue(Money(20)))

        let hours = try await harness.http(
            .get, "/v1/reports/pnl?from=2026-03-10&to=2026-03-10&tz=America/New_York&group_by=hour,buyer", key: Self.operatorKey)
        let rows = try #require(hours.json["rows"]?.booksItems)
        #expect(rows.count == 3)
        #expect(rows[0]["period"] == "2026-03-10T19")
        #expect(rows[0]["buyer"] == "alpha")
        // The unsold round's buyer is null; an hour has no campaign key when not grouped by it.
        #expect(rows[1]["period"] == "2026-03-10T20")
        #expect(rows[1]["buyer"] == .null)
        #expect(rows[1].objectValue?.keys.contains("campaign") == false)
        #expect(rows[2]["buyer"] == "alpha")
        #expect(rows[2]["margin"] == JSONValue(Money(5)))

        let csv = try await harness.rawHTTP(.get, "/v1/reports/pnl?from=2026-03-10&to=2026-03-11&group_by=day,campaign&format=csv",
                                            key: Self.operatorKey)
        #expect(csv.status == 200)
        let lines = String(decoding: csv.body, as: UTF8.self).split(separator: "\r\n")
        #expect(lines.first == "period,campaign,rounds,sold,revenue,payout,returned,payout_reversed,margin")
        #expect(lines.contains("2026-03-10,autos,1,1,10,5,0,0,5"))
        #expect(lines.contains("2026-03-11,tiny,1,0,0,0,0,0,0"))
        #expect(lines.last == "total,,3,2,20,10,0,0,10")

        // Bad parameters are 400s naming the parameter; other keys are 401s.
        for (query, field) in [("from=2026-03-10&to=2026-03-10&group_by=week", "group_by"), ("from=2026-03-10&to=2026-03-10&tz=Mars/Base", "tz"),
                               ("to=2026-03-10", "from"), ("from=2026-03-10&to=2026-02-30", "to"), ("from=2026-03-10&to=2026-03-09", "to"),
                               ("from=2026-03-10&to=2026-03-10&format=xml", "format"), ("from=2026-03-10&to=2026-03-10&colour=red", "colour")] {
            let bad = try await harness.http(.get, "/v1/reports/pnl?\(query)", key: Self.operatorKey)
            #expect(bad.status == 400, "\(query)")
            #expect(bad.json["error"]?["field"] == .string(field), "\(query)")
        }
        #expect(try await harness.http(.get, "/v1/reports/pnl?from=2026-03-10&to=2026-03-10").status == 401)
        #expect(try await harness.http(.get, "/v1/reports/pnl?from=2026-03-10&to=2026-03-10", key: Self.alphaKey).status == 401)

        // Buyers and sellers.
        let buyers = try await harness.http(.get, "/v1/reports/buyers?from=2026-03-10&to=2026-03-11", key: Self.operatorKey)
        let alpha = try #require(buyers.json["buyers"]?.booksItems?.first { $0["buyer"] == "alpha" })
        #expect(alpha["pings"] == 2)
        #expect(alpha["bids"] == 2)
        #expect(alpha["bid_rate"] == JSONValue.number("1"))
        #expect(alpha["wins"] == 2)
        #expect(alpha["accept_rate"] == JSONValue.number("1"))
        #expect(alpha["average_bid"] == JSONValue(Money(10)))
        #expect(alpha["latency_p99_ms"]?.isNull == false)
        #expect(alpha["reasons"]?["sold"] == 2)
        let buyersCSV = try await harness.rawHTTP(.get, "/v1/reports/buyers?from=2026-03-10&to=2026-03-11&format=csv", key: Self.operatorKey)
        #expect(String(decoding: buyersCSV.body, as: UTF8.self).hasPrefix("buyer,pings,bids,bid_rate,wins,"))
        let sellers = try await harness.http(.get, "/v1/reports/sellers?from=2026-03-10&to=2026-03-11", key: Self.operatorKey)
        let one = try #require(sellers.json["sellers"]?.booksItems?.first)
        #expect(one["seller"] == "seller-one")
        #expect(one["rounds"] == 3)
        #expect(one["revenue"] == JSONValue(Money(20)))

        // A seller sees its own leads, sales and payout: never revenue or margin.
        let summary = try await harness.http(.get, "/v1/seller/summary?from=2026-03-10&to=2026-03-11")
        #expect(summary.status == 200)
        #expect(summary.json["leads"] == 3)
        #expect(summary.json["sold"] == 2)
        #expect(summary.json["payout"] == JSONValue(Money(10)))
        #expect(summary.json.objectValue?.keys.contains("revenue") == false)
        #expect(summary.json.objectValue?.keys.contains("margin") == false)
        #expect(summary.json["statuses"]?["unsold"] == 1)
        #expect(try await harness.http(.get, "/v1/seller/summary?from=2026-03-10&to=2026-03-11", key: Self.operatorKey).status == 401)
        await harness.shutdown()
    }

    @Test func purchasesComePageByPageWithTheirContactsAndAsCSV() async throws {
        let clock = SetWallClock(ms: Self.eveningMs)
        let harness = try await Self.harness(clock: clock)
        var sold: [String] = []
        for index in 0..<5 {
            sold.append(try await sell(harness, email: "buyer\(index)@example.com"))
            clock.advance(seconds: 60)
        }
        var seen: [String] = []
        var cursor: String?
        var pages = 0
        repeat {
            let path = "/v1/buyer/purchases?from=2026-03-10&to=2026-03-10&limit=2" + (cursor.map { "&cursor=\($0)" } ?? "")
            let page = try await harness.http(.get, path, key: Self.alphaKey)
            #expect(page.status == 200)
            for purchase in page.json["purchases"]?.booksItems ?? [] {
                seen.append(purchase["auction_id"]?.stringValue ?? "")
                #expect(purchase["price"] == JSONValue(Money(10)))
                #expect(purchase["contact"]?["email"]?.stringValue?.hasSuffix("@example.com") == true)
                #expect(purchase["returned"] == .null)
            }
            cursor = page.json["next_cursor"]?.stringValue
            pages += 1
        } while cursor != nil && pages < 10
        #expect(pages == 3)
        #expect(seen == sold.reversed())

        let csv = try await harness.rawHTTP(.get, "/v1/buyer/purchases?from=2026-03-10&to=2026-03-10&format=csv", key: Self.alphaKey)
        let lines = String(decoding: csv.body, as: UTF8.self).split(separator: "\r\n")
        #expect(lines.count == 6)
        #expect(lines[0].hasPrefix("auction_id,kind,campaign,sold_at,price,source,return_id,return_reason,credited,contact."))
        #expect(lines[0].contains("contact.email"))
        #expect(lines[1].contains("buyer4@example.com"))

        // Another buyer bought nothing; a seller key is not a buyer key; bad parameters are named.
        let other = try await harness.http(.get, "/v1/buyer/purchases?from=2026-03-10&to=2026-03-10", key: Self.betaKey)
        #expect(other.json["purchases"]?.booksItems?.isEmpty == true)
        #expect(try await harness.http(.get, "/v1/buyer/purchases?from=2026-03-10&to=2026-03-10").status == 401)
        let badLimit = try await harness.http(.get, "/v1/buyer/purchases?from=2026-03-10&to=2026-03-10&limit=0", key: Self.alphaKey)
        #expect(badLimit.json["error"]?["field"] == "limit")
        let badCursor = try await harness.http(.get, "/v1/buyer/purchases?from=2026-03-10&to=2026-03-10&cursor=zzz", key: Self.alphaKey)
        #expect(badCursor.json["error"]?["field"] == "cursor")
        await harness.shutdown()
    }

    @Test func aCallIsSoldWhenItConvertsAndAnAdjustmentCountsOnItsDay() async throws {
        let clock = SetWallClock(ms: Self.eveningMs)
        let harness = try await Self.harness(clock: clock, extra: [callBidder("caller", bid: "40.00", destination: "+18005550101", minDuration: 90)])
        let short = try await harness.runCall(TestExchange.call(number: "+14155550001"))
        _ = try await harness.event(short.callID, .completed, duration: 30)
        let long = try await harness.runCall(TestExchange.call(number: "+14155550002"))
        _ = try await harness.event(long.callID, .completed, duration: 120)
        let adjusted = try await harness.http(.post, "/v1/adjustments", body: #"{"buyer": "caller", "revenue": -5, "note": "goodwill credit"}"#,
                                              key: Self.operatorKey)
        #expect(adjusted.status == 200)
        #expect(adjusted.json["adjustment_id"]?.stringValue?.hasPrefix("adj_") == true)
        let noNote = try await harness.http(.post, "/v1/adjustments", body: #"{"revenue": 1}"#, key: Self.operatorKey)
        #expect(noNote.json["error"]?["field"] == "note")
        #expect(try await harness.http(.post, "/v1/adjustments", body: #"{"revenue": 1, "note": "x"}"#, key: Self.alphaKey).status == 401)

        let pnl = try await harness.http(.get, "/v1/reports/pnl?from=2026-03-10&to=2026-03-10&group_by=buyer", key: Self.operatorKey)
        let caller = try #require(pnl.json["rows"]?.booksItems?.first { $0["buyer"] == "caller" })
        #expect(caller["rounds"] == 1)
        #expect(caller["sold"] == 1)
        #expect(caller["revenue"] == JSONValue(Money(35)))
        #expect(caller["payout"] == JSONValue(Money(20)))
        let unsold = try #require(pnl.json["rows"]?.booksItems?.first { $0["buyer"] == .null })
        #expect(unsold["rounds"] == 1)
        #expect(unsold["sold"] == 0)
        await harness.shutdown()
    }
}

extension JSONValue {
    /// The elements of an array.
    var booksItems: [JSONValue]? {
        if case .array(let items) = self { return items }
        return nil
    }
}
