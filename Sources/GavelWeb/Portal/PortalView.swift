import Foundation
import GavelCore
import GavelExchange

/// What `portal.mustache` shows.
struct PortalView {
    struct Cap {
        let label: String
        let used: String
        let limit: String
        /// For the `<meter>`: thousandths of the limit used.
        let value: Int
        let unlimited: Bool
    }

    struct Field {
        let name: String
        let value: String
    }

    struct Purchase {
        let auctionID: String
        let soldAt: String
        let campaign: String
        let kind: String
        let price: String
        let contact: [Field]
        let returned: Bool
        let returnedReason: String
    }

    struct Reason {
        let value: String
        let label: String
    }

    let title = "Buyer portal"
    let base = "/portal/"
    let area = "portal"
    let csrf: String
    let who: String
    let notice: String?
    let paused: Bool
    let pausedInConfig: Bool
    let pausedInPortal: Bool
    let caps: [Cap]
    let spentToday: String
    let from: String
    let to: String
    let query: String
    let csvHref: String
    let purchases: [Purchase]
    let count: Int
    let total: String
    let truncated: Bool
    let reasons: [Reason]

    init(session: WebSession, notice: String?, buyer: Buyer?, buyerID: String, portalPaused: Bool,
         usage: BuyerLedger.CapUsage?, filter: PurchaseFilter, purchases: [WebPurchase], limit: Int) {
        csrf = session.csrfToken
        who = buyerID
        self.notice = notice
        pausedInConfig = buyer?.paused ?? false
        pausedInPortal = portalPaused
        paused = pausedInConfig || pausedInPortal
        let usage = usage ?? BuyerLedger.CapUsage(hour: 0, day: 0, month: 0, daySpend: .zero)
        let caps = buyer?.caps ?? BuyerCaps()
        func counted(_ label: String, _ used: Int, _ limit: Int?) -> Cap {
            Cap(label: label, used: String(used), limit: limit.map(String.init) ?? "no cap",
                value: limit.map { $0 > 0 ? min(1000, used * 1000 / $0) : 1000 } ?? 0, unlimited: limit == nil)
        }
        var rows = [counted("Leads this hour", usage.hour, caps.hourly), counted("Leads today", usage.day, caps.daily),
                    counted("Leads this month", usage.month, caps.monthly)]
        let budget = caps.dailyBudget
        rows.append(Cap(label: "Spend today", used: Formatting.money(usage.daySpend), limit: budget.map(Formatting.money) ?? "no budget",
                        value: budget.map { $0.units > 0 ? Int(min(1000, usage.daySpend.units * 1000 / $0.units)) : 1000 } ?? 0,
                        unlimited: budget == nil))
        self.caps = rows
        spentToday = Formatting.money(usage.daySpend)
        from = filter.from
        to = filter.to
        query = filter.query
        var components = URLComponents()
        components.path = "/portal/purchases.csv"
        components.queryItems = [URLQueryItem(name: "from", value: filter.from), URLQueryItem(name: "to", value: filter.to)]
            + (filter.query.isEmpty ? [] : [URLQueryItem(name: "q", value: filter.query)])
        csvHref = components.string ?? "/portal/purchases.csv"
        self.purchases = purchases.map { purchase in
            Purchase(auctionID: purchase.auctionID, soldAt: Formatting.dateTime(ms: purchase.soldAtMs), campaign: purchase.campaignID,
                     kind: purchase.kind, price: Formatting.money(purchase.price),
                     contact: purchase.contact.map { Field(name: $0.name.replacingOccurrences(of: "_", with: " "), value: $0.value) },
                     returned: purchase.returnedReason != nil, returnedReason: purchase.returnedReason ?? "")
        }
        count = purchases.count
        total = Formatting.money(purchases.filter { $0.returnedReason == nil }.reduce(Money.zero) { $0 + $1.price })
        truncated = purchases.count >= limit
        reasons = ReturnReason.allCases.map { Reason(value: $0.rawValue, label: $0.rawValue.replacingOccurrences(of: "_", with: " ")) }
    }
}
