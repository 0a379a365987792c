import Foundation
import GavelCore
import Testing
@testable import GavelWeb

struct SessionStoreTests {
    let start = Date(timeIntervalSince1970: 1_800_000_000)

    @Test func aSessionHasRandomIdAndTokenAndIsFoundAgain() {
        let store = SessionStore()
        let first = store.create(for: .buyer(id: "acme"), at: start)
        let second = store.create(for: .buyer(id: "acme"), at: start)
        #expect(first.id.count == 64 && first.csrfToken.count == 64)
        #expect(first.id != second.id && first.csrfToken != first.id)
        #expect(store.session(id: first.id, at: start.addingTimeInterval(60))?.principal == .buyer(id: "acme"))
        #expect(store.session(id: "nope", at: start) == nil)
    }

    @Test func sessionsExpireWhenIdleAndAfterTheirLifetime() {
        let store = SessionStore(limits: .init(capacity: 10, idleTimeout: 600, lifetime: 3600))
        let idle = store.create(for: .operator(id: "ops"), at: start)
        #expect(store.session(id: idle.id, at: start.addingTimeInterval(601)) == nil)
        let busy = store.create(for: .operator(id: "ops"), at: start)
        for minute in stride(from: 5, through: 55, by: 5) {
            #expect(store.session(id: busy.id, at: start.addingTimeInterval(Double(minute) * 60)) != nil)
        }
        #expect(store.session(id: busy.id, at: start.addingTimeInterval(3601)) == nil)
        #expect(store.count == 0)
    }

    @Test func theStoreIsBoundedAndDropsTheLeastRecentlySeen() {
        let store = SessionStore(limits: .init(capacity: 3))
        let sessions = (0..<3).map { store.create(for: .buyer(id: "b\($0)"), at: start.addingTimeInterval(Double($0))) }
        _ = store.session(id: sessions[0].id, at: start.addingTimeInterval(10))  // seen again: kept
        let fourth = store.create(for: .buyer(id: "b3"), at: start.addingTimeInterval(11))
        #expect(store.count == 3)
        #expect(store.session(id: sessions[1].id, at: start.addingTimeInterval(12)) == nil)
        #expect(store.session(id: sessions[0].id, at: start.addingTimeInterval(12)) != nil)
        #expect(store.session(id: fourth.id, at: start.addingTimeInterval(12)) != nil)
    }

    @Test func tokensCompareExactly() {
        let token = RandomToken.make()
        #expect(RandomToken.equal(token, token))
        #expect(!RandomToken.equal(token, String(token.dropLast()) + "x"))
        #expect(!RandomToken.equal("", ""))
        #expect(!RandomToken.equal(token, String(token.dropLast())))
    }

    @Test func formsDecode() {
        let fields = WebArea.parseForm("csrf=abc&key=k%2B1+2&note=a%26b&empty=&flag")
        #expect(fields == ["csrf": "abc", "key": "k+1 2", "note": "a&b", "empty": "", "flag": ""])
    }
}

struct PageFormattingTests {
    @Test func moneyShowsCentsAndGroupsThousands() {
        #expect(Formatting.money(Money(12)) == "12.00")
        #expect(Formatting.money(Money(decimal: "1250.5")!) == "1,250.50")
        #expect(Formatting.money(Money(decimal: "0.0025")!) == "0.0025")
        #expect(Formatting.money(Money(decimal: "-3", allowNegative: true)!) == "-3.00")
    }

    @Test func daysParseOnlyRealDates() {
        #expect(Formatting.dayStart("2026-11-30") == 1_795_996_800_000)
        #expect(Formatting.dayStart("2026-02-30") == nil)
        #expect(Formatting.dayStart("2026-1-3") == nil)
        #expect(Formatting.day(ms: 1_795_996_800_000 + 86_399_999) == "2026-11-30")
        #expect(Formatting.dayStart(ms: 1_795_996_800_000 + 5) == 1_795_996_800_000)
    }

    @Test func csvQuotesAndDefusesFormulas() {
        #expect(PurchaseCSV.cell("plain") == "plain")
        #expect(PurchaseCSV.cell("Doe, Jo") == "\"Doe, Jo\"")
        #expect(PurchaseCSV.cell("say \"hi\"") == "\"say \"\"hi\"\"\"")
        #expect(PurchaseCSV.cell("=HYPERLINK(\"x\")") == "\"'=HYPERLINK(\"\"x\"\")\"")
        #expect(PurchaseCSV.cell("+15551234567") == "+15551234567")  // a phone number stays as it is
        #expect(PurchaseCSV.cell("-2+3+cmd|x") == "'-2+3+cmd|x")
        let purchase = WebPurchase(auctionID: "auc_1", campaignID: "autos", kind: "lead", soldAtMs: 1_795_996_800_000, price: Money(12),
                                   contact: [("first_name", "Jo"), ("email", "jo@example.com")])
        #expect(PurchaseCSV.text([purchase]) ==
            "auction_id,sold_at,campaign,kind,price,returned,first_name,email\r\nauc_1,2026-11-30T00:00:00.000Z,autos,lead,12,,Jo,jo@example.com\r\n")
    }

    @Test func chartsScaleToTheirBox() {
        let columns = Charts.columns([("10:00", 10, 5), ("10:01", 0, 0), ("10:02", 20, 20)], width: 300, height: 120)
        #expect(columns.bars.count == 3)
        #expect(columns.bars[2].y == 14 && columns.bars[2].height == 86)  // the peak fills the plot
        #expect(columns.bars[0].height == 43 && columns.bars[0].soldHeight == 21)
        #expect(columns.bars[1].height == 0)
        #expect(!columns.empty)
        let rows = Charts.rows([("outbid", 3), ("won", 1), ("timeout", 3)])
        #expect(rows.rows.map(\.label) == ["outbid", "timeout", "won"])
        #expect(rows.rows[0].width == rows.rows[1].width && rows.rows[2].width < rows.rows[0].width)
    }

    @Test func everyTemplateParses() throws {
        let renderer = try PageRenderer.load()
        #expect(renderer.assets["gavel.css"] != nil && renderer.assets["live.js"] != nil)
        for name in ["signin", "error", "portal", "dashboard", "dashboard-live", "round", "chart-columns", "chart-rows", "head", "foot"] {
            #expect(renderer.library.getTemplate(named: name) != nil, "\(name).mustache")
        }
    }
}
