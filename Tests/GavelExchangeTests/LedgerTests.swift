import Foundation
import GavelCore
import Testing
@testable import GavelExchange
@testable import GavelStore

struct LedgerTests {
    /// 2024-07-10T12:00:00Z, a Wednesday.
    static let noon = Date(timeIntervalSince1970: 1_720_612_800)

    func buyer(_ id: String = "b1", caps: BuyerCaps = BuyerCaps(), duplicateWindowDays: Int = 0,
               schedule: Schedule? = nil) -> Buyer {
        Buyer(id: id, campaigns: ["autos"], ping: Endpoint(url: "http://127.0.0.1:1/ping"),
              post: Endpoint(url: "http://127.0.0.1:1/post"), filters: BuyerFilters(schedule: schedule), caps: caps,
              duplicateWindowDays: duplicateWindowDays)
    }

    func at(_ seconds: TimeInterval) -> Date { Self.noon.addingTimeInterval(seconds) }

    func isCapped(_ result: Result<BuyerLedger.Reservation, BuyerLedger.ReservationDenied>) -> Bool {
        if case .failure(.capped) = result { return true }
        return false
    }

    func isDuplicate(_ result: Result<BuyerLedger.Reservation, BuyerLedger.ReservationDenied>) -> Bool {
        if case .failure(.duplicate) = result { return true }
        return false
    }

    func reservation(_ result: Result<BuyerLedger.Reservation, BuyerLedger.ReservationDenied>,
                     sourceLocation: SourceLocation = #_sourceLocation) throws -> BuyerLedger.Reservation {
        try #require(try? result.get(), "expected a reservation, got \(result)", sourceLocation: sourceLocation)
    }

    // MARK: Caps

    @Test func hourlyCap() async throws {
        let ledger = BuyerLedger()
        let capped = buyer(caps: BuyerCaps(hourly: 3))
        for minute in 0..<3 {
            _ = try reservation(await ledger.reserve(buyer: capped, price: Money(10), contactHash: nil, at: at(Double(minute) * 60)))
        }
        #expect(isCapped(await ledger.reserve(buyer: capped, price: Money(10), contactHash: nil, at: at(59 * 60))))
        // 13:00 is a new hour.
        _ = try reservation(await ledger.reserve(buyer: capped, price: Money(10), contactHash: nil, at: at(3_600)))
        #expect(await ledger.usage(buyerID: "b1", window: "H:2024-07-10T12").count == 3)
        #expect(await ledger.usage(buyerID: "b1", window: "H:2024-07-10T13").count == 1)
        #expect(await ledger.usage(buyerID: "b1", window: "D:2024-07-10").count == 4)
        #expect(await ledger.usage(buyerID: "b1", window: "M:2024-07") == (count: 4, spend: Money(40)))
    }

    @Test func dailyCap() async throws {
        let ledger = BuyerLedger()
        let capped = buyer(caps: BuyerCaps(daily: 2))
        _ = try reservation(await ledger.reserve(buyer: capped, price: Money(1), contactHash: nil, at: at(0)))
        _ = try reservation(await ledger.reserve(buyer: capped, price: Money(1), contactHash: nil, at: at(3 * 3_600)))
        #expect(isCapped(await ledger.reserve(buyer: capped, price: Money(1), contactHash: nil, at: at(11 * 3_600 + 3_599))))
        // The next UTC day (2024-07-11) starts fresh.
        _ = try reservation(await ledger.reserve(buyer: capped, price: Money(1), contactHash: nil, at: at(12 * 3_600)))
    }

    @Test func monthlyCap() async throws {
        let ledger = BuyerLedger()
        let capped = buyer(caps: BuyerCaps(monthly: 2))
        _ = try reservation(await ledger.reserve(buyer: capped, price: Money(1), contactHash: nil, at: at(0)))
        _ = try reservation(await ledger.reserve(buyer: capped, price: Money(1), contactHash: nil, at: at(5 * 86_400)))
        #expect(isCapped(await ledger.reserve(buyer: capped, price: Money(1), contactHash: nil, at: at(20 * 86_400))))
        // 2024-08-01 is 22 days after 2024-07-10.
        _ = try reservation(await ledger.reserve(buyer: capped, price: Money(1), contactHash: nil, at: at(22 * 86_400)))
    }

    @Test func capsCountInTheBuyersTimeZone() async throws {
        let ledger = BuyerLedger()
        let newYork = Schedule(timeZone: TimeZone(identifier: "America/New_York")!)
        let capped = buyer(caps: BuyerCaps(daily: 1), schedule: newYork)
        // 2024-07-11T02:00Z is still 2024-07-10 (22:00 EDT) in New York: the same day as noon UTC.
        _ = try reservation(await ledger.reserve(buyer: capped, price: Money(1), contactHash: nil, at: at(0)))
        #expect(isCapped(await ledger.reserve(buyer: capped, price: Money(1), contactHash: nil, at: at(14 * 3_600))))
        #expect(await ledger.usage(buyerID: "b1", window: "D:2024-07-10").count == 1)
        #expect(await ledger.usage(buyerID: "b1", window: "H:2024-07-10T08").count == 1)
        // 2024-07-11T04:00Z is midnight in New York: a new day.
        _ = try reservation(await ledger.reserve(buyer: capped, price: Money(1), contactHash: nil, at: at(16 * 3_600)))
    }

    @Test func releaseGivesTheSlotBack() async throws {
        let ledger = BuyerLedger()
        let capped = buyer(caps: BuyerCaps(daily: 1, dailyBudget: Money(100)))
        let first = try reservation(await ledger.reserve(buyer: capped, price: Money(60), contactHash: nil, at: at(0)))
        #expect(first.buyerID == "b1")
        #expect(first.price == Money(60))
        #expect(isCapped(await ledger.reserve(buyer: capped, price: Money(1), contactHash: nil, at: at(1))))
        await ledger.release(first)
        #expect(await ledger.usage(buyerID: "b1", window: "D:2024-07-10") == (count: 0, spend: .zero))
        _ = try reservation(await ledger.reserve(buyer: capped, price: Money(60), contactHash: nil, at: at(2)))
    }

    @Test func dailyBudgetBySpend() async throws {
        let ledger = BuyerLedger()
        let budgeted = buyer(caps: BuyerCaps(dailyBudget: Money(50)))
        _ = try reservation(await ledger.reserve(buyer: budgeted, price: Money(30), contactHash: nil, at: at(0)))
        #expect(await ledger.exclusions(for: [budgeted], contactHash: nil, at: at(1)).isEmpty)
        #expect(isCapped(await ledger.reserve(buyer: budgeted, price: Money(decimal: "20.0001")!, contactHash: nil, at: at(2))))
        let last = try reservation(await ledger.reserve(buyer: budgeted, price: Money(20), contactHash: nil, at: at(3)))
        #expect(await ledger.usage(buyerID: "b1", window: "D:2024-07-10").spend == Money(50))
        // Used up: excluded before any ping.
        #expect(await ledger.exclusions(for: [budgeted], contactHash: nil, at: at(4)) == ["b1": .capped])
        #expect(isCapped(await ledger.reserve(buyer: budgeted, price: Money(units: 1), contactHash: nil, at: at(5))))
        await ledger.release(last)
        #expect(await ledger.exclusions(for: [budgeted], contactHash: nil, at: at(6)).isEmpty)
        // The next day has a fresh budget.
        _ = try reservation(await ledger.reserve(buyer: budgeted, price: Money(50), contactHash: nil, at: at(86_400)))
    }

    @Test func unlimitedBuyerIsNeverCapped() async throws {
        let ledger = BuyerLedger()
        let open = buyer()
        for second in 0..<500 {
            _ = try reservation(await ledger.reserve(buyer: open, price: Money(5), contactHash: nil, at: at(Double(second))))
        }
        #expect(await ledger.usage(buyerID: "b1", window: "D:2024-07-10") == (count: 500, spend: Money(2_500)))
        #expect(await ledger.exclusions(for: [open], contactHash: nil, at: at(600)).isEmpty)
    }

    @Test func concurrentReservationsNeverPassTheCap() async {
        let ledger = BuyerLedger()
        let capped = buyer(caps: BuyerCaps(daily: 100))
        let successes = await withTaskGroup(of: Bool.self) { group in
            for index in 0..<1_000 {
                group.addTask {
                    let result = await ledger.reserve(buyer: capped, price: Money(1), contactHash: nil, at: self.at(Double(index % 60)))
                    return (try? result.get()) != nil
                }
            }
            var count = 0
            for await success in group where success { count += 1 }
            return count
        }
        #expect(successes == 100)
        #expect(await ledger.usage(buyerID: "b1", window: "D:2024-07-10") == (count: 100, spend: Money(100)))
    }

    @Test func commitKeepsTheSlotAndReturnsIncrements() async throws {
        let ledger = BuyerLedger()
        let capped = buyer(caps: BuyerCaps(daily: 1))
        let held = try reservation(await ledger.reserve(buyer: capped, price: Money(decimal: "12.5")!, contactHash: nil, at: at(0)))
        let increments = await ledger.commit(held, at: at(1))
        #expect(increments == [
            CapIncrement(buyerID: "b1", window: "H:2024-07-10T12", count: 1, spend: Money(decimal: "12.5")!),
            CapIncrement(buyerID: "b1", window: "D:2024-07-10", count: 1, spend: Money(decimal: "12.5")!),
            CapIncrement(buyerID: "b1", window: "M:2024-07", count: 1, spend: Money(decimal: "12.5")!),
        ])
        #expect(isCapped(await ledger.reserve(buyer: capped, price: Money(1), contactHash: nil, at: at(2))))
        #expect(await ledger.usage(buyerID: "b1", window: "D:2024-07-10").count == 1)
    }

    // MARK: Duplicates

    @Test func duplicateWindow() async throws {
        let ledger = BuyerLedger()
        let strict = buyer("strict", duplicateWindowDays: 30)
        let otherStrict = buyer("other", duplicateWindowDays: 30)
        let relaxed = buyer("relaxed")
        let sold = try reservation(await ledger.reserve(buyer: strict, price: Money(10), contactHash: "hash-jo", at: at(0)))
        _ = await ledger.commit(sold, at: at(0))

        #expect(isDuplicate(await ledger.reserve(buyer: strict, price: Money(10), contactHash: "hash-jo", at: at(86_400))))
        #expect(await ledger.exclusions(for: [strict, otherStrict, relaxed], contactHash: "hash-jo", at: at(60)) == ["strict": .duplicate])
        // Another buyer, a buyer without a window, or another contact are fine.
        _ = try reservation(await ledger.reserve(buyer: otherStrict, price: Money(10), contactHash: "hash-jo", at: at(60)))
        _ = try reservation(await ledger.reserve(buyer: relaxed, price: Money(10), contactHash: "hash-jo", at: at(60)))
        _ = try reservation(await ledger.reserve(buyer: strict, price: Money(10), contactHash: "hash-sam", at: at(60)))
        _ = try reservation(await ledger.reserve(buyer: strict, price: Money(10), contactHash: nil, at: at(60)))
        // The window is 30 days.
        #expect(isDuplicate(await ledger.reserve(buyer: strict, price: Money(10), contactHash: "hash-jo", at: at(30 * 86_400 - 1))))
        _ = try reservation(await ledger.reserve(buyer: strict, price: Money(10), contactHash: "hash-jo", at: at(30 * 86_400)))
    }

    @Test func aPostInFlightBlocksTheSameContact() async throws {
        let ledger = BuyerLedger()
        let strict = buyer("strict", duplicateWindowDays: 7)
        let inFlight = try reservation(await ledger.reserve(buyer: strict, price: Money(10), contactHash: "hash-jo", at: at(0)))
        #expect(isDuplicate(await ledger.reserve(buyer: strict, price: Money(10), contactHash: "hash-jo", at: at(1))))
        #expect(await ledger.exclusions(for: [strict], contactHash: "hash-jo", at: at(1)) == ["strict": .duplicate])
        // The post failed: the contact may be sold to this buyer again.
        await ledger.release(inFlight)
        _ = try reservation(await ledger.reserve(buyer: strict, price: Money(10), contactHash: "hash-jo", at: at(2)))
    }

    @Test func duplicateIsCheckedBeforeCaps() async throws {
        let ledger = BuyerLedger()
        let strict = buyer("strict", caps: BuyerCaps(daily: 1), duplicateWindowDays: 7)
        let sold = try reservation(await ledger.reserve(buyer: strict, price: Money(10), contactHash: "hash-jo", at: at(0)))
        _ = await ledger.commit(sold, at: at(0))
        #expect(isDuplicate(await ledger.reserve(buyer: strict, price: Money(10), contactHash: "hash-jo", at: at(1))))
        #expect(isCapped(await ledger.reserve(buyer: strict, price: Money(10), contactHash: "hash-sam", at: at(1))))
        #expect(await ledger.exclusions(for: [strict], contactHash: "hash-jo", at: at(2)) == ["strict": .duplicate])
        #expect(await ledger.exclusions(for: [strict], contactHash: "hash-sam", at: at(2)) == ["strict": .capped])
    }

    // MARK: Restore

    @Test func restoreThenExclusions() async {
        let ledger = BuyerLedger()
        let capped = buyer("capped", caps: BuyerCaps(daily: 5))
        let budgeted = buyer("budgeted", caps: BuyerCaps(dailyBudget: Money(100)))
        let strict = buyer("strict", duplicateWindowDays: 30)
        let fine = buyer("fine", caps: BuyerCaps(daily: 5), duplicateWindowDays: 30)
        await ledger.restore(counters: [
            CapIncrement(buyerID: "capped", window: "D:2024-07-10", count: 3, spend: Money(30)),
            CapIncrement(buyerID: "capped", window: "D:2024-07-10", count: 2, spend: Money(20)),
            CapIncrement(buyerID: "budgeted", window: "D:2024-07-10", count: 1, spend: Money(100)),
            CapIncrement(buyerID: "fine", window: "D:2024-07-09", count: 5, spend: Money(50)),
        ], sales: [
            SaleRecord(buyerID: "strict", contactHash: "hash-jo", soldAtMs: 1_720_000_000_000),  // 2024-07-03
            SaleRecord(buyerID: "fine", contactHash: "hash-jo", soldAtMs: 1_717_000_000_000),    // 2024-05-29: outside 30 days
        ])
        #expect(await ledger.usage(buyerID: "capped", window: "D:2024-07-10") == (count: 5, spend: Money(50)))
        let exclusions = await ledger.exclusions(for: [capped, budgeted, strict, fine], contactHash: "hash-jo", at: Self.noon)
        #expect(exclusions == ["capped": .capped, "budgeted": .capped, "strict": .duplicate])
        #expect(await ledger.exclusions(for: [strict], contactHash: "hash-sam", at: Self.noon).isEmpty)
        #expect(isDuplicate(await ledger.reserve(buyer: strict, price: Money(1), contactHash: "hash-jo", at: Self.noon)))
        #expect(isCapped(await ledger.reserve(buyer: capped, price: Money(1), contactHash: nil, at: Self.noon)))
    }

    @Test func restoreKeepsTheLatestSale() async throws {
        let ledger = BuyerLedger()
        let strict = buyer("strict", duplicateWindowDays: 1)
        await ledger.restore(counters: [], sales: [
            SaleRecord(buyerID: "strict", contactHash: "hash-jo", soldAtMs: 1_720_612_000_000),  // noon - 800 s
            SaleRecord(buyerID: "strict", contactHash: "hash-jo", soldAtMs: 1_700_000_000_000),  // long before
        ])
        #expect(isDuplicate(await ledger.reserve(buyer: strict, price: Money(1), contactHash: "hash-jo", at: Self.noon)))
        _ = try reservation(await ledger.reserve(buyer: strict, price: Money(1), contactHash: "hash-jo", at: at(86_400)))
    }

    @Test func restoreFromARealStore() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gavel-ledger-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try RoundStore(path: directory.appendingPathComponent("gavel.sqlite").path)
        defer { store.close() }

        let strict = buyer("strict", caps: BuyerCaps(daily: 1), duplicateWindowDays: 30)
        let first = BuyerLedger()
        let held = try reservation(await first.reserve(buyer: strict, price: Money(25), contactHash: "hash-jo", at: Self.noon))
        let increments = await first.commit(held, at: Self.noon)
        var round = AuctionRound(id: "r1", payoutRule: .share(basisPoints: 7000), considered: [
            .fixedPrice(.init(buyerID: "strict"), price: Money(25)),
        ])
        _ = round.closeBidding(atMs: 1_720_612_800_000, method: .auction)
        _ = round.nextPost(atMs: 1_720_612_800_000, remainingMs: 500, minimumPostMs: 50)
        let sale = try #require(round.recordPost(.accepted(reference: nil), latencyUs: 1)?.sale)
        try await store.record(RoundRecord(
            id: "r1", kind: .lead, sellerID: "s1", campaignID: "autos", phase: .final, status: "sold",
            createdAtMs: 1_720_612_800_000, tmaxMs: 800, durationUs: 1, winnerID: "strict", price: sale.price, payout: sale.payout,
            leadJSON: "{}", contactHash: "hash-jo", entries: round.entries, posts: round.posts, capIncrements: increments, billable: true))

        // A restarted exchange remembers both the cap and the contact.
        let restarted = BuyerLedger()
        await restarted.restore(counters: try store.capCounters(), sales: try store.salesWithContact(sinceMs: 0))
        #expect(await restarted.exclusions(for: [strict], contactHash: "hash-jo", at: at(60)) == ["strict": .duplicate])
        #expect(await restarted.exclusions(for: [strict], contactHash: "hash-sam", at: at(60)) == ["strict": .capped])
        #expect(await restarted.usage(buyerID: "strict", window: "M:2024-07") == (count: 1, spend: Money(25)))
    }

    // MARK: Health

    @Test func failuresLeadToABackOffAndAProbe() async {
        let ledger = BuyerLedger(healthPolicy: .init(failuresBeforeBackOff: 3, firstBackOffSeconds: 2, maxBackOffSeconds: 5))
        let flaky = buyer("flaky")
        let steady = buyer("steady")
        await ledger.recordHealth(failed: ["flaky"], answered: ["steady"], at: at(0))
        await ledger.recordHealth(failed: ["flaky"], answered: [], at: at(1))
        #expect(await ledger.exclusions(for: [flaky, steady], contactHash: nil, at: at(1)).isEmpty)
        await ledger.recordHealth(failed: ["flaky"], answered: [], at: at(10))
        // Backed off for 2 s from the third failure.
        #expect(await ledger.exclusions(for: [flaky, steady], contactHash: nil, at: at(10)) == ["flaky": .unhealthy])
        #expect(await ledger.exclusions(for: [flaky], contactHash: nil, at: at(11.9)) == ["flaky": .unhealthy])
        // After the back-off it is probed again...
        #expect(await ledger.exclusions(for: [flaky], contactHash: nil, at: at(12)).isEmpty)
        // ...and one more failure backs off again, for twice as long.
        await ledger.recordHealth(failed: ["flaky"], answered: [], at: at(12.5))
        #expect(await ledger.exclusions(for: [flaky], contactHash: nil, at: at(16.4)) == ["flaky": .unhealthy])
        #expect(await ledger.exclusions(for: [flaky], contactHash: nil, at: at(16.5)).isEmpty)
        // The back-off never exceeds the maximum (5 s, not 8).
        await ledger.recordHealth(failed: ["flaky"], answered: [], at: at(20))
        #expect(await ledger.exclusions(for: [flaky], contactHash: nil, at: at(24.9)) == ["flaky": .unhealthy])
        #expect(await ledger.exclusions(for: [flaky], contactHash: nil, at: at(25)).isEmpty)
    }

    @Test func anAnswerResetsHealth() async {
        let ledger = BuyerLedger(healthPolicy: .init(failuresBeforeBackOff: 2, firstBackOffSeconds: 10, maxBackOffSeconds: 60))
        let flaky = buyer("flaky")
        await ledger.recordHealth(failed: ["flaky"], answered: [], at: at(0))
        await ledger.recordHealth(failed: [], answered: ["flaky"], at: at(1))
        await ledger.recordHealth(failed: ["flaky"], answered: [], at: at(2))
        // 1 failure since the answer: not backed off.
        #expect(await ledger.exclusions(for: [flaky], contactHash: nil, at: at(2)).isEmpty)
        await ledger.recordHealth(failed: ["flaky"], answered: [], at: at(3))
        #expect(await ledger.exclusions(for: [flaky], contactHash: nil, at: at(3)) == ["flaky": .unhealthy])
        // An answer clears the back-off at once.
        await ledger.recordHealth(failed: [], answered: ["flaky"], at: at(4))
        #expect(await ledger.exclusions(for: [flaky], contactHash: nil, at: at(4)).isEmpty)
    }

    @Test func defaultPolicyNeedsFiveFailures() async {
        let ledger = BuyerLedger()
        let flaky = buyer("flaky")
        for second in 0..<4 { await ledger.recordHealth(failed: ["flaky"], answered: [], at: at(Double(second))) }
        #expect(await ledger.exclusions(for: [flaky], contactHash: nil, at: at(4)).isEmpty)
        await ledger.recordHealth(failed: ["flaky"], answered: [], at: at(4))
        #expect(await ledger.exclusions(for: [flaky], contactHash: nil, at: at(5)) == ["flaky": .unhealthy])
        #expect(await ledger.exclusions(for: [flaky], contactHash: nil, at: at(6)).isEmpty)  // 2 s first back-off
    }

    @Test func cappedIsReportedBeforeUnhealthy() async throws {
        let ledger = BuyerLedger(healthPolicy: .init(failuresBeforeBackOff: 1, firstBackOffSeconds: 60))
        let capped = buyer("capped", caps: BuyerCaps(daily: 1))
        _ = try reservation(await ledger.reserve(buyer: capped, price: Money(1), contactHash: nil, at: at(0)))
        await ledger.recordHealth(failed: ["capped"], answered: [], at: at(0))
        #expect(await ledger.exclusions(for: [capped], contactHash: nil, at: at(1)) == ["capped": .capped])
    }
}
