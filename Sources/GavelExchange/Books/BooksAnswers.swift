import Foundation
import GavelCore
import GavelStore

// The answers of the books' endpoints (CONTRACT v2 "Buyers, returns and the books"), as JSON and
// as CSV, rendered here so that the HTTP API and the web pages show the same figures.

extension BookFigures {
    /// `rounds, sold, revenue, payout, returned, payout_reversed, margin`.
    public func json(into object: inout JSONObject) {
        object["rounds"] = .number(String(rounds))
        object["sold"] = .number(String(sold))
        object["revenue"] = JSONValue(revenue)
        object["payout"] = JSONValue(payout)
        object["returned"] = JSONValue(returned)
        object["payout_reversed"] = JSONValue(payoutReversed)
        object["margin"] = JSONValue(margin)
    }

    public var json: JSONValue {
        var object = JSONObject()
        json(into: &object)
        return .object(object)
    }
}

extension ProfitAndLoss {
    /// `{"rows": [{"period", "campaign", ..., "rounds", ..., "margin"}], "totals": {...}}`: each
    /// row names the dimensions it is grouped by (`period` for hour or day); an unsold round's
    /// buyer is null.
    public var json: JSONValue {
        .object(JSONObject([
            "rows": .array(rows.map { row in
                var object = JSONObject()
                for (name, value) in labels(of: row) { object[name] = value.map(JSONValue.string) ?? .null }
                row.figures.json(into: &object)
                return .object(object)
            }),
            "totals": totals.json,
        ]))
    }

    /// The rows as CSV, with a last row `total`.
    public var csv: String {
        var table = CSVTable(header: labelNames + BookFigures.csvHeader)
        for row in rows { table.append(labels(of: row).map { $0.value ?? "" } + row.figures.csvCells) }
        var total = labelNames.map { _ in "" }
        if !total.isEmpty { total[0] = "total" }
        table.append(total + totals.csvCells)
        return table.text
    }

    private var labelNames: [String] {
        var names: [String] = []
        if groupBy.contains(.hour) || groupBy.contains(.day) { names.append("period") }
        for dimension in groupBy where ![.hour, .day].contains(dimension) { names.append(dimension.rawValue) }
        return names
    }

    private func labels(of row: Row) -> [(name: String, value: String?)] {
        labelNames.map { name in
            switch name {
            case "period": return (name, row.period)
            case "campaign": return (name, row.campaign)
            case "buyer": return (name, row.buyer)
            case "seller": return (name, row.seller)
            default: return (name, row.source)
            }
        }
    }
}

extension BookFigures {
    static let csvHeader = ["rounds", "sold", "revenue", "payout", "returned", "payout_reversed", "margin"]
    var csvCells: [String] {
        [String(rounds), String(sold), revenue.description, payout.description, returned.description, payoutReversed.description,
         margin.description]
    }
}

/// Report numbers: rates to 4 decimals, latencies in milliseconds.
enum ReportNumber {
    /// `part / whole` to 4 decimals; null when `whole` is zero.
    static func rate(_ part: Int64, _ whole: Int64) -> JSONValue {
        guard whole > 0 else { return .null }
        return .number(Money(units: part * Money.scale / whole).description)
    }

    static func milliseconds(_ microseconds: Int64?) -> JSONValue {
        guard let microseconds else { return .null }
        return .number(Money(units: microseconds * 10).description)
    }

    static func counts(_ counts: [String: Int64]) -> JSONValue {
        var object = JSONObject()
        for key in counts.keys.sorted() { object[key] = .number(String(counts[key]!)) }
        return .object(object)
    }

    static func text(_ value: JSONValue) -> String {
        switch value {
        case .null: return ""
        case .number(let text), .string(let text): return text
        default: return value.serialized
        }
    }
}

extension BuyerActivity {
    /// pings, bids, bid rate, wins, win rate (of bids), posts, accept rate, average bid,
    /// latency p50/p99 (ms), spend, returns, and every reason code counted.
    public var json: JSONValue {
        var object = JSONObject()
        object["buyer"] = .string(buyerID)
        for (name, value) in figures { object[name] = value }
        object["reasons"] = ReportNumber.counts(reasons)
        return .object(object)
    }

    private var figures: [(String, JSONValue)] {
        [
            ("pings", .number(String(pings))), ("bids", .number(String(bids))), ("bid_rate", ReportNumber.rate(bids, pings)),
            ("wins", .number(String(wins))), ("win_rate", ReportNumber.rate(wins, bids)),
            ("posts", .number(String(posts))), ("accept_rate", ReportNumber.rate(postsAccepted, posts)),
            ("average_bid", bids > 0 ? JSONValue(Money(units: bidTotal.units / bids)) : .null),
            ("latency_p50_ms", ReportNumber.milliseconds(latencyP50Us)), ("latency_p99_ms", ReportNumber.milliseconds(latencyP99Us)),
            ("spend", JSONValue(spend)), ("returns", .number(String(returns))), ("returned", JSONValue(returned)),
        ]
    }

    /// `{"buyers": [...]}`.
    public static func json(_ buyers: [BuyerActivity]) -> JSONValue { .object(JSONObject(["buyers": .array(buyers.map(\.json))])) }

    /// One line per buyer; reasons as `reason.<code>` columns.
    public static func csv(_ buyers: [BuyerActivity]) -> String {
        let reasonCodes = Set(buyers.flatMap(\.reasons.keys)).sorted()
        let names = buyers.first?.figures.map(\.0) ?? BuyerActivity(buyerID: "").figures.map(\.0)
        var table = CSVTable(header: ["buyer"] + names + reasonCodes.map { "reason.\($0)" })
        for buyer in buyers {
            table.append([buyer.buyerID] + buyer.figures.map { ReportNumber.text($0.1) } + reasonCodes.map { String(buyer.reasons[$0] ?? 0) })
        }
        return table.text
    }
}

extension SellerActivity {
    /// The operator's view: rounds, sold, sold rate, the money, statuses and buyers' reasons.
    public var json: JSONValue {
        var object = JSONObject()
        object["seller"] = .string(sellerID)
        figures.json(into: &object)
        object["sold_rate"] = ReportNumber.rate(figures.sold, figures.rounds)
        object["statuses"] = ReportNumber.counts(statuses)
        object["reasons"] = ReportNumber.counts(reasons)
        return .object(object)
    }

    /// `{"sellers": [...]}`.
    public static func json(_ sellers: [SellerActivity]) -> JSONValue { .object(JSONObject(["sellers": .array(sellers.map(\.json))])) }

    public static func csv(_ sellers: [SellerActivity]) -> String {
        let statuses = Set(sellers.flatMap(\.statuses.keys)).sorted()
        let reasons = Set(sellers.flatMap(\.reasons.keys)).sorted()
        var table = CSVTable(header: ["seller"] + BookFigures.csvHeader + ["sold_rate"] + statuses.map { "status.\($0)" } + reasons.map { "reason.\($0)" })
        for seller in sellers {
            table.append([seller.sellerID] + seller.figures.csvCells + [ReportNumber.text(ReportNumber.rate(seller.figures.sold, seller.figures.rounds))]
                         + statuses.map { String(seller.statuses[$0] ?? 0) } + reasons.map { String(seller.reasons[$0] ?? 0) })
        }
        return table.text
    }

    /// The seller's own view (`GET /v1/seller/summary`): its leads, sold, payout and reasons;
    /// never revenue or margin.
    public var summaryFigures: [(String, JSONValue)] {
        [
            ("leads", .number(String(figures.rounds))), ("sold", .number(String(figures.sold))),
            ("sold_rate", ReportNumber.rate(figures.sold, figures.rounds)), ("payout", JSONValue(figures.payout)),
            ("payout_reversed", JSONValue(figures.payoutReversed)), ("net_payout", JSONValue(figures.payout - figures.payoutReversed)),
        ]
    }

    public var summaryJSON: JSONValue {
        var object = JSONObject()
        object["seller"] = .string(sellerID)
        for (name, value) in summaryFigures { object[name] = value }
        object["statuses"] = ReportNumber.counts(statuses)
        object["reasons"] = ReportNumber.counts(reasons)
        return .object(object)
    }

    public var summaryCSV: String {
        var table = CSVTable(header: ["seller"] + summaryFigures.map(\.0) + statuses.keys.sorted().map { "status.\($0)" }
                             + reasons.keys.sorted().map { "reason.\($0)" })
        table.append([sellerID] + summaryFigures.map { ReportNumber.text($0.1) } + statuses.keys.sorted().map { String(statuses[$0]!) }
                     + reasons.keys.sorted().map { String(reasons[$0]!) })
        return table.text
    }
}

extension ReturnReceipt {
    /// `{"return_id", "auction_id", "credited", "payout_reversed"}`.
    public var json: JSONValue {
        ["return_id": .string(returnID), "auction_id": .string(auctionID), "credited": JSONValue(credited),
         "payout_reversed": JSONValue(payoutReversed)]
    }
}

extension Adjustment {
    public var json: JSONValue {
        var object = JSONObject()
        object["adjustment_id"] = .string(adjustmentID)
        object["operator"] = .string(operatorID)
        object["at"] = .string(Timestamps.rfc3339(ms: atMs))
        object["campaign"] = campaignID.map(JSONValue.string) ?? .null
        object["seller"] = sellerID.map(JSONValue.string) ?? .null
        object["buyer"] = buyerID.map(JSONValue.string) ?? .null
        object["revenue"] = JSONValue(revenue)
        object["payout"] = JSONValue(payout)
        object["note"] = .string(note)
        return .object(object)
    }
}

extension Purchase {
    /// The contact paid for, field by field.
    public var contact: JSONObject { contactJSON.flatMap { try? JSONValue.parse($0) }?.objectValue ?? JSONObject() }
    /// The lead's (non-PII) fields.
    public var lead: JSONObject { (try? JSONValue.parse(leadJSON))?.objectValue ?? JSONObject() }

    /// `{"auction_id", "kind", "campaign", "sold_at", "price", "source", "lead", "contact",
    /// "return_deadline", "returned": null | {"return_id", "reason", "returned_at", "credited"}}`.
    public func json(returnDeadlineMs: Int64) -> JSONValue {
        var object = JSONObject()
        object["auction_id"] = .string(sale.roundID)
        object["kind"] = .string(sale.kind.rawValue)
        object["campaign"] = .string(sale.campaignID)
        object["sold_at"] = .string(Timestamps.rfc3339(ms: sale.soldAtMs))
        object["price"] = JSONValue(sale.price)
        object["source"] = sale.source.map(JSONValue.string) ?? .null
        object["lead"] = .object(lead)
        object["contact"] = .object(contact)
        object["return_deadline"] = .string(Timestamps.rfc3339(ms: returnDeadlineMs))
        if let returned = sale.returned {
            object["returned"] = .object(JSONObject([
                "return_id": .string(returned.returnID), "reason": .string(returned.reason),
                "returned_at": .string(Timestamps.rfc3339(ms: returned.atMs)), "credited": JSONValue(returned.credited),
            ]))
        } else {
            object["returned"] = .null
        }
        return .object(object)
    }
}

extension PurchasePage {
    /// `{"purchases": [...], "next_cursor": "..." | null}`.
    public func json(returnDeadlineMs: (BookedSale) -> Int64) -> JSONValue {
        .object(JSONObject([
            "purchases": .array(purchases.map { $0.json(returnDeadlineMs: returnDeadlineMs($0.sale)) }),
            "next_cursor": nextCursor.map { .string($0.description) } ?? .null,
        ]))
    }

    /// One line per purchase; the contact's and the lead's fields as `contact.<name>` and
    /// `lead.<name>` columns (every name on the page, in order of appearance).
    public var csv: String {
        var contactNames: [String] = []
        var leadNames: [String] = []
        for purchase in purchases {
            for key in purchase.contact.keys where !contactNames.contains(key) { contactNames.append(key) }
            for key in purchase.lead.keys where !leadNames.contains(key) { leadNames.append(key) }
        }
        var table = CSVTable(header: ["auction_id", "kind", "campaign", "sold_at", "price", "source", "return_id", "return_reason", "credited"]
                             + contactNames.map { "contact.\($0)" } + leadNames.map { "lead.\($0)" })
        for purchase in purchases {
            let sale = purchase.sale
            let contact = purchase.contact
            let lead = purchase.lead
            table.append([sale.roundID, sale.kind.rawValue, sale.campaignID, Timestamps.rfc3339(ms: sale.soldAtMs), sale.price.description,
                          sale.source ?? "", sale.returned?.returnID ?? "", sale.returned?.reason ?? "", sale.returned?.credited.description ?? ""]
                         + contactNames.map { contact[$0].map(ReportNumber.text) ?? "" } + leadNames.map { lead[$0].map(ReportNumber.text) ?? "" })
        }
        return table.text
    }
}

/// RFC 4180 CSV: fields with a comma, quote or line break are quoted; text a spreadsheet would
/// run as a formula (`=`, `+`, `@`, or `-` unless the cell is a number) gets a leading `'`.
public struct CSVTable: Sendable {
    private(set) var lines: [String]

    public init(header: [String]) { lines = [CSVTable.line(header)] }

    public mutating func append(_ cells: [String]) { lines.append(CSVTable.line(cells)) }

    public var text: String { lines.joined(separator: "\r\n") + "\r\n" }

    static func line(_ cells: [String]) -> String { cells.map(cell).joined(separator: ",") }

    static func cell(_ value: String) -> String {
        var text = value
        if let first = text.first {
            // A negative amount stays a number; anything else starting with "-" could be a formula
            // (`-1+HYPERLINK(...)`), so only a cell that is wholly a number is exempt.
            let formula = first == "=" || first == "+" || first == "@" || first == "\t" || first == "\r"
                || (first == "-" && Money(decimal: text, allowNegative: true) == nil)
            if formula { text = "'" + text }
        }
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
