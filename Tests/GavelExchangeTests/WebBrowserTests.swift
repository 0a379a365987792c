import Foundation
import GavelConfig
import GavelCore
import GavelExchange
import Testing

/// The portal and the dashboard in headless Chromium, used the way a person would: sign in through
/// the forms, watch a sale appear on the live dashboard, return that lead in the portal, see the
/// P&L change. Screenshots of each page are saved (`Browser.screenshots`).
@Suite(.serialized)
struct WebBrowserTests {
    @Test func aSaleAppearsOnTheDashboardIsReturnedInThePortalAndThePnLChanges() async throws {
        let chromium = try #require(Browser.chromium, "install Debian's chromium package (scripts/setup.sh does)")
        let harness = try await WebPagesTests.harness(acmeYAML: "caps: {daily: 50, daily_budget: 500}")
        let site = "http://127.0.0.1:\(harness.port)"
        let operatorView = try Browser(chromium: chromium)
        let buyerView = try Browser(chromium: chromium)

        // The operator signs in to the dashboard: nothing sold yet.
        try await operatorView.go("\(site)/ui/")
        try await operatorView.screenshot("dashboard-signin")
        try await operatorView.fill("#key", WebPagesTests.operatorKey)
        try await operatorView.click("#signin button[type=submit]")
        #expect(try await operatorView.text("#figure-revenue .value") == "0.00")
        #expect(try await operatorView.body.contains("No rounds yet."))

        // A seller posts a lead; the open dashboard shows the sale without a reload (live panel).
        let sale = try await harness.http(.post, "/v1/leads", body: TestExchange.lead())
        #expect(sale.status == 200)
        let auctionID = try #require(sale.json["auction_id"]?.stringValue)
        try await operatorView.wait(until: "document.getElementById('recent').innerText.includes('\(auctionID)')")
        #expect(try await operatorView.eval("document.getElementById('live').getAttribute('data-refreshed') !== null") as? Bool == true)
        #expect(try await operatorView.text("#figure-revenue .value") == "12.00")
        #expect(try await operatorView.text("#figure-margin .value") == "6.00")
        #expect(try await operatorView.text("#figure-sold-percent .value") == "100.0%")
        #expect(try await operatorView.text("#buyer-acme").contains("healthy"))
        try await operatorView.screenshot("dashboard")

        // The drill-down: every buyer, its bid and reason, the post.
        try await operatorView.click("#recent a")
        let round = try await operatorView.body
        #expect(round.contains(auctionID))
        #expect(round.contains("sold") && round.contains("outbid") && round.contains("12.00") && round.contains("8.00"))
        try await operatorView.screenshot("dashboard-round")

        // The buyer signs in to the portal and sees the lead with the contact it paid for.
        try await buyerView.go("\(site)/portal/")
        try await buyerView.screenshot("portal-signin")
        try await buyerView.fill("#key", "wrong-key-123")
        try await buyerView.click("#signin button[type=submit]")
        #expect(try await buyerView.body.contains("That key is not a buyer key."))
        try await buyerView.fill("#key", WebPagesTests.buyerKey)
        try await buyerView.click("#signin button[type=submit]")
        let row = "#p-\(auctionID)"
        #expect(try await buyerView.text(row).contains("jo@example.com"))
        #expect(try await buyerView.text("#caps").contains("12.00"))
        try await buyerView.screenshot("portal")

        // Search narrows the list; the CSV link carries the search.
        try await buyerView.fill("input[name=q]", "nobody@example.com")
        try await buyerView.click("form.filters button[type=submit]")
        #expect(try await buyerView.body.contains("No purchases in these days."))
        #expect((try await buyerView.eval("document.getElementById('csv').getAttribute('href')") as? String ?? "").contains("q=nobody"))
        try await buyerView.fill("input[name=q]", "jo@")
        try await buyerView.click("form.filters button[type=submit]")
        #expect(try await buyerView.text(row).contains("jo@example.com"))

        // The buyer returns the lead with a reason.
        try await buyerView.fill("\(row) select[name=reason]", "invalid_phone")
        try await buyerView.fill("\(row) input[name=note]", "number disconnected")
        try await buyerView.click("\(row) form.return button[type=submit]")
        #expect(try await buyerView.text("#notice").contains("12.00 credited"))
        #expect(try await buyerView.text(row).contains("returned: invalid_phone"))
        #expect(try await buyerView.text("#caps").contains("0.00"))  // the price is back in today's budget
        try await buyerView.screenshot("portal-returned")

        // The buyer pauses itself.
        try await buyerView.click("#pause")
        #expect(try await buyerView.text("#status").contains("Paused"))
        try await buyerView.screenshot("portal-paused")

        // The operator's dashboard: the P&L shows the return (margin 12 - 12 returned - 6 payout + 6 reversed),
        // the buyer shows as paused.
        try await operatorView.go("\(site)/ui/")
        try await operatorView.wait(until: "document.querySelector('#figure-margin .value').innerText === '0.00' && document.querySelector('#figure-margin .detail').innerText.includes('returned 12.00')")
        #expect(try await operatorView.text("#figure-revenue .value") == "12.00")
        #expect(try await operatorView.text("#buyer-acme").contains("paused (portal)"))
        try await operatorView.screenshot("dashboard-after-return")

        // And through the report API the operator sees the same P&L.
        let pnl = try await harness.http(.get, "/v1/reports/pnl?from=\(Self.today)&to=\(Self.today)", key: WebPagesTests.operatorKey)
        #expect(pnl.status == 200)
        #expect(pnl.json["totals"]?["returned"]?.numberText == "12")
        await operatorView.close()
        await buyerView.close()
        await harness.shutdown()
    }

    static var today: String {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyy-MM-dd"
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.locale = Locale(identifier: "en_US_POSIX")
        return formatter.string(from: Date())
    }
}
