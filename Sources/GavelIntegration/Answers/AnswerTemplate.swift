import GavelCore

/// How a buyer's answers are written: JSON, XML or plain text.
public enum AnswerFormat: String, Sendable, Hashable, CaseIterable {
    case json
    case xml
    case text

    func read(_ body: [UInt8]) -> Result<ParsedAnswer, AnswerReadFailure> {
        switch self {
        case .json:
            do { return .success(.tree(try JSONValue.parse(body))) } catch { return .failure(AnswerReadFailure(detail: error.description)) }
        case .xml:
            do { return .success(.tree(try XMLReader.parse(body))) } catch { return .failure(AnswerReadFailure(detail: error.description)) }
        case .text:
            return .success(.text(String(decoding: body, as: UTF8.self)))
        }
    }
}

struct AnswerReadFailure: Error {
    var detail: String
}

/// How a ping answer is read: where the bid and its values are, and when it is a bid at all.
public struct PingAnswerTemplate: Sendable, Hashable {
    public var format: AnswerFormat
    public var bid: AnswerLocator?
    public var bidID: AnswerLocator?
    public var expiresInS: AnswerLocator?
    public var destination: AnswerLocator?
    public var minDurationS: AnswerLocator?
    /// The buyer's own words when it declines (`rejectReason`).
    public var reason: AnswerLocator?
    /// When set and false, the answer is `no_bid` whatever price it names (`status: Matched`).
    public var bidWhen: AnswerRule?
    /// When true, the answer is `bad_response` (the buyer reports its own error).
    public var errorWhen: AnswerRule?
    /// Values the post needs back, as `{{ping.NAME}}` (boberdoo's `Lead_ID`).
    public var keep: [(name: String, locator: AnswerLocator)]

    public init(format: AnswerFormat = .json, bid: AnswerLocator? = nil, bidID: AnswerLocator? = nil, expiresInS: AnswerLocator? = nil,
                destination: AnswerLocator? = nil, minDurationS: AnswerLocator? = nil, reason: AnswerLocator? = nil,
                bidWhen: AnswerRule? = nil, errorWhen: AnswerRule? = nil, keep: [(name: String, locator: AnswerLocator)] = []) {
        self.format = format
        self.bid = bid
        self.bidID = bidID
        self.expiresInS = expiresInS
        self.destination = destination
        self.minDurationS = minDurationS
        self.reason = reason
        self.bidWhen = bidWhen
        self.errorWhen = errorWhen
        self.keep = keep
    }

    public static func == (lhs: PingAnswerTemplate, rhs: PingAnswerTemplate) -> Bool {
        lhs.format == rhs.format && lhs.bid == rhs.bid && lhs.bidID == rhs.bidID && lhs.expiresInS == rhs.expiresInS
            && lhs.destination == rhs.destination && lhs.minDurationS == rhs.minDurationS && lhs.reason == rhs.reason
            && lhs.bidWhen == rhs.bidWhen && lhs.errorWhen == rhs.errorWhen
            && lhs.keep.map(\.name) == rhs.keep.map(\.name) && lhs.keep.map(\.locator) == rhs.keep.map(\.locator)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(format)
        hasher.combine(bid)
        hasher.combine(keep.map(\.name))
    }

    func interpret(status: Int, body: [UInt8], maxBid: Money, reasons: ReasonCategories) -> BidAnswer {
        if status == 204 { return BidAnswer(.noBid) }
        guard (200..<300).contains(status) else { return BidAnswer(.failed(.httpError, detail: "HTTP \(status)")) }
        guard !body.isEmpty else { return BidAnswer(.noBid) }
        let answer: ParsedAnswer
        switch format.read(body) {
        case .success(let read): answer = read
        case .failure(let failure): return BidAnswer(.failed(.badResponse, detail: failure.detail))
        }
        // The highest of several bids (`<bids><bid>…`), and every other value read from the same one.
        var binding: Int?
        var price: Money?
        if let bid {
            for candidate in bid.values(in: answer) {
                guard let text = candidate.value.templateText?.trimmed, !text.isEmpty else { continue }
                guard let amount = Money(decimal: Substring(text.hasPrefix("$") ? String(text.dropFirst()) : text)) else {
                    return BidAnswer(.failed(.badResponse, detail: "bid \"\(text.prefix(40))\" is not a positive amount with at most 4 decimals"))
                }
                if price == nil || amount > price! {
                    price = amount
                    binding = candidate.binding
                }
            }
        }
        let buyerReason = reason.flatMap { $0.value(in: answer, binding: binding) }.flatMap(\.templateText)
            .map { reasons.reason(for: $0) }
        if let errorWhen, errorWhen.holds(in: answer, binding: binding) {
            return BidAnswer(.failed(.badResponse, detail: "the buyer reported an error" + (buyerReason.map { ": \($0.code)" } ?? "")),
                             buyerReason: buyerReason)
        }
        if let bidWhen, !bidWhen.holds(in: answer, binding: binding) { return BidAnswer(.noBid, buyerReason: buyerReason) }
        guard let price, price > .zero else { return BidAnswer(.noBid, buyerReason: buyerReason) }
        guard price <= maxBid else {
            return BidAnswer(.failed(.badResponse, detail: "bid \(price) is above the campaign's max_bid \(maxBid)"))
        }
        func read(_ locator: AnswerLocator?) -> JSONValue? { locator.flatMap { $0.value(in: answer, binding: binding) } }
        let expires: Int?
        switch BidLimits.integer(read(expiresInS), named: "expires_in_s", in: BidLimits.expiresInS) {
        case .success(let seconds): expires = seconds
        case .failure(let problem): return BidAnswer(.failed(.badResponse, detail: problem.detail))
        }
        let minDuration: Int?
        switch BidLimits.integer(read(minDurationS), named: "min_duration_s", in: BidLimits.minDurationS) {
        case .success(let seconds): minDuration = seconds
        case .failure(let problem): return BidAnswer(.failed(.badResponse, detail: problem.detail))
        }
        var kept: [String: String] = [:]
        for (name, locator) in keep {
            if let text = locator.value(in: answer, binding: binding)?.templateText { kept[name] = String(text.prefix(512)) }
        }
        let bidIDText = read(bidID)?.templateText.map { String($0.prefix(256)) }
        let destinationText = read(destination)?.templateText.flatMap { $0.isEmpty ? nil : String($0.prefix(256)) }
        return BidAnswer(.bid(price: price, bidID: bidIDText, expiresInS: expires, destination: destinationText, minDurationS: minDuration),
                         buyerReason: nil, kept: kept)
    }
}

/// How a post answer is read: when it is accepted, and its reference and reason.
public struct PostAnswerTemplate: Sendable, Hashable {
    public var format: AnswerFormat
    public var accepted: AnswerRule
    public var reference: AnswerLocator?
    public var reason: AnswerLocator?
    /// When true, the post failed on the buyer's side (`outcome: error`): `post_failed`, not `post_rejected`.
    public var errorWhen: AnswerRule?

    public init(format: AnswerFormat = .json, accepted: AnswerRule, reference: AnswerLocator? = nil, reason: AnswerLocator? = nil,
                errorWhen: AnswerRule? = nil) {
        self.format = format
        self.accepted = accepted
        self.reference = reference
        self.reason = reason
        self.errorWhen = errorWhen
    }

    func interpret(status: Int, body: [UInt8], reasons: ReasonCategories) -> PostAnswer {
        guard (200..<300).contains(status) else { return PostAnswer(.failed(detail: "HTTP \(status)")) }
        let answer: ParsedAnswer
        switch format.read(body) {
        case .success(let read): answer = read
        case .failure(let failure): return PostAnswer(.failed(detail: failure.detail))
        }
        let reasonText = reason.flatMap { $0.value(in: answer, binding: nil) }.flatMap(\.templateText).map { String($0.prefix(256)) }
        let buyerReason = reasonText.map { reasons.reason(for: $0) }
        if let errorWhen, errorWhen.holds(in: answer, binding: nil) {
            return PostAnswer(.failed(detail: "the buyer reported an error" + (reasonText.map { ": \($0)" } ?? "")), buyerReason: buyerReason)
        }
        guard accepted.holds(in: answer, binding: nil) else { return PostAnswer(.rejected(reason: reasonText), buyerReason: buyerReason) }
        let referenceText = reference.flatMap { $0.value(in: answer, binding: nil) }.flatMap(\.templateText).map { String($0.prefix(256)) }
        return PostAnswer(.accepted(reference: referenceText))
    }
}

/// A buyer's own reason codes mapped to the operator's categories (`reason_categories:`).
public struct ReasonCategories: Sendable, Hashable {
    private let table: [String: String]

    public init(_ table: [String: String] = [:]) {
        self.table = Dictionary(table.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { first, _ in first })
    }

    func reason(for code: String) -> BuyerReason {
        BuyerReason(code: code, category: table[code.trimmed.lowercased()])
    }
}
