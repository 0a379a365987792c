import Foundation
import GavelCore
import Yams

/// Loads and validates a config directory:
///
///     campaigns.yaml     campaigns: [...]
///     sellers.yaml       sellers: [...]
///     buyers/*.yaml      one buyer per file
///
/// Every problem is collected and reported as `FILE: path.to.field: message`.
public enum ConfigLoader {
    public static func load(
        directory: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigError) -> ExchangeConfig {
        let log = ProblemLog(environment: environment)
        let fileManager = FileManager.default
        var isDirectory: ObjCBool = false
        guard fileManager.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ConfigError(problems: [ConfigProblem(file: directory, path: "", message: "is not a directory")])
        }
        let campaignsFile = document(directory: directory, name: "campaigns.yaml", log: log)
        let campaigns = campaignsFile.map { readCampaigns($0) } ?? []
        let outcomePriors = campaignsFile.map { readOutcomePriors($0.child("ev_prior")) } ?? [:]
        let sellers = document(directory: directory, name: "sellers.yaml", log: log).map { readSellers($0) } ?? []

        let buyersDirectory = (directory as NSString).appendingPathComponent("buyers")
        let buyerFiles = ((try? fileManager.contentsOfDirectory(atPath: buyersDirectory)) ?? [])
            .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }
            .sorted()
        if buyerFiles.isEmpty {
            log.problems.append(ConfigProblem(file: "buyers/", path: "", message: "no buyer files (*.yaml) found"))
        }
        let buyers = buyerFiles.compactMap { name in
            document(directory: buyersDirectory, name: name, displayName: "buyers/\(name)", log: log)
                .flatMap { readBuyer(applyingTemplate($0, directory: directory)) }
        }

        crossCheck(campaigns: campaigns, sellers: sellers, buyers: buyers, log: log)
        checkPhoneLines(campaigns: campaigns, sellers: sellers, log: log)
        let telephony = readTelephony(directory: directory, log: log)
        let operators = readOperators(directory: directory, log: log)
        checkAPIKeys(sellers: sellers, buyers: buyers, operators: operators, log: log)
        guard log.problems.isEmpty else { throw ConfigError(problems: log.problems) }
        var config = ExchangeConfig(campaigns: campaigns.map(\.value), sellers: sellers.map(\.value), buyers: buyers.map(\.value),
                                    outcomePriors: outcomePriors)
        config.telephony = telephony
        config.operators = operators.map(\.value)
        return config
    }

    /// The one-line summary `gavel validate` prints.
    public static func summary(of config: ExchangeConfig) -> String {
        let operators = config.operators.count
        return "config ok: \(config.campaigns.count) campaigns, \(config.sellers.count) sellers, \(config.buyers.count) buyers, "
            + "\(operators) operator\(operators == 1 ? "" : "s")"
    }

    // MARK: Files

    static func document(directory: String, name: String, displayName: String? = nil, log: ProblemLog) -> YAMLField? {
        let path = (directory as NSString).appendingPathComponent(name)
        let file = displayName ?? name
        guard let data = FileManager.default.contents(atPath: path) else {
            log.problems.append(ConfigProblem(file: file, path: "", message: "file is missing or unreadable"))
            return nil
        }
        guard let text = String(data: data, encoding: .utf8) else {
            log.problems.append(ConfigProblem(file: file, path: "", message: "is not UTF-8 text"))
            return nil
        }
        do {
            guard let node = try Yams.compose(yaml: text) else {
                log.problems.append(ConfigProblem(file: file, path: "", message: "is empty"))
                return nil
            }
            return YAMLField(node: node, file: file, path: "", log: log)
        } catch {
            log.problems.append(ConfigProblem(file: file, path: "", message: "is not valid YAML: \(error)"))
            return nil
        }
    }

    /// A value read from a file, with where it came from for cross-file messages.
    struct Located<Value> {
        var value: Value
        var field: YAMLField
    }

    // MARK: Campaigns

    static func readCampaigns(_ root: YAMLField) -> [Located<Campaign>] {
        guard root.mapping(known: ["campaigns", "ev_prior"]) else { return [] }
        let list = root.child("campaigns")
        if !list.isPresent { list.problem("is required: a list of campaigns") }
        return list.elements().compactMap { field in
            guard field.mapping(known: Set([
                "id", "kind", "vertical", "distribution", "tmax_ms", "ping_timeout_ms", "floor", "payout",
                "required_fields", "bid_hold_s", "max_call_s", "tracking", "max_bid", "rank_by", "ev_fallback",
            ]).union(phoneLineKeys).union(returnTermKeys)) else { return nil }
            let id = identifier(field.child("id"))
            let kind = field.child("kind").oneOf(AuctionKind.self, default: .lead)
            let vertical = field.child("vertical").string(required: true)
            let distribution = field.child("distribution").oneOf(DistributionMethod.self, default: .auction)
            let tmax = field.child("tmax_ms").int(range: 10...60_000) ?? 1000
            let pingTimeout = field.child("ping_timeout_ms").int(range: 5...60_000)
            if let pingTimeout, pingTimeout >= tmax {
                field.child("ping_timeout_ms").problem("must be less than tmax_ms (\(tmax)) to leave time for the post")
            }
            let floor = field.child("floor").money() ?? .zero
            let maxBid = field.child("max_bid").money() ?? Campaign.defaultMaxBid
            if maxBid == .zero || maxBid > Campaign.maxBidLimit {
                field.child("max_bid").problem("must be more than 0 and at most \(Campaign.maxBidLimit)")
            } else if floor > maxBid {
                field.child("floor").problem("must not be above max_bid (\(maxBid))")
            }
            let payout = readPayout(field.child("payout"))
            let required = field.child("required_fields").stringList()
            let hold = field.child("bid_hold_s").int(range: 1...86_400) ?? 60
            let maxCall = field.child("max_call_s").int(range: 10...86_400) ?? 3600
            let tracking = readTracking(field.child("tracking"))
            if tracking != nil, kind != .call { field.child("tracking").problem("tracking numbers belong to call campaigns") }
            if distribution == .waterfall, kind == .call {
                field.child("distribution").problem(
                    "waterfall is for lead campaigns: a caller on the line cannot wait while tier after tier is pinged; use priority")
            }
            let rankBy = readRankBy(field, kind: kind)
            guard let id, let vertical else { return nil }
            var campaign = Campaign(
                id: id, kind: kind, vertical: vertical, distribution: distribution, tmaxMs: tmax,
                pingTimeoutMs: pingTimeout, floor: floor, payout: payout, requiredFields: required, bidHoldS: hold,
                maxCallS: maxCall, tracking: tracking, maxBid: maxBid, rankBy: rankBy
            )
            campaign.phoneLines = readPhoneLines(field, kind: kind)
            readReturnTerms(field, into: &campaign)
            return Located(value: campaign, field: field)
        }
    }

    static func readTracking(_ field: YAMLField) -> TrackingNumbers? {
        guard field.isPresent, field.mapping(known: ["pools", "fallbacks", "reservation_s", "selector", "seller"]) else { return nil }
        func numbers(_ mapping: YAMLField) -> [(String, [YAMLField])] {
            guard mapping.isPresent, let node = mapping.node?.mapping else {
                if mapping.isPresent { mapping.problem("must map traffic sources to numbers") }
                return []
            }
            return node.compactMap { key, _ in key.string.map { ($0, [mapping.child($0)]) } }
        }
        func phone(_ element: YAMLField) -> String? {
            guard let text = element.string(required: true) else { return nil }
            guard let number = PhoneNumber.e164(text) else {
                element.problem("must be a phone number such as +18005550100, got \"\(text)\"")
                return nil
            }
            return number
        }
        var pools: [String: [String]] = [:]
        for (source, fields) in numbers(field.child("pools")) {
            pools[source.lowercased()] = fields[0].elements().compactMap(phone)
        }
        var fallbacks: [String: String] = [:]
        for (source, fields) in numbers(field.child("fallbacks")) {
            if let number = phone(fields[0]) { fallbacks[source.lowercased()] = number }
        }
        if fallbacks["default"] == nil { field.child("fallbacks.default").problem("is required: the number shown when no other applies") }
        let all = Array(pools.values.joined()) + Array(fallbacks.values)
        if Set(all).count != all.count {
            field.child("pools").problem("a number appears twice; each tracking number must attribute to one source")
        }
        return TrackingNumbers(
            pools: pools, fallbacks: fallbacks, reservationS: field.child("reservation_s").int(range: 10...86_400) ?? 1800,
            selector: field.child("selector").string() ?? ".gavel-phone"
        )
    }

    static func readPayout(_ field: YAMLField) -> PayoutRule {
        guard field.isPresent else { return .share(basisPoints: 7000) }
        guard field.mapping(known: ["share", "fixed"]) else { return .share(basisPoints: 7000) }
        let share = field.child("share")
        let fixed = field.child("fixed")
        switch (share.isPresent, fixed.isPresent) {
        case (true, false):
            guard let fraction = share.money() else { return .share(basisPoints: 7000) }
            guard fraction.units <= Money.scale else {
                share.problem("must be a fraction between 0 and 1 (0.7 = 70%)")
                return .share(basisPoints: 7000)
            }
            return .share(basisPoints: fraction.units)
        case (false, true):
            return .fixed(fixed.money() ?? .zero)
        default:
            field.problem("must have exactly one of share (a fraction of the price) or fixed (an amount)")
            return .share(basisPoints: 7000)
        }
    }

    // MARK: Sellers

    static func readSellers(_ root: YAMLField) -> [Located<Seller>] {
        guard root.mapping(known: ["sellers"]) else { return [] }
        let list = root.child("sellers")
        if !list.isPresent { list.problem("is required: a list of sellers") }
        return list.elements().compactMap { field in
            guard field.mapping(known: ["id", "api_key", "campaigns", "rate_limit"]) else { return nil }
            let id = identifier(field.child("id"))
            let key = field.child("api_key").string(required: true)
            if let key, key.count < 8 { field.child("api_key").problem("must be at least 8 characters") }
            let campaigns = field.child("campaigns").stringList()
            if campaigns.isEmpty { field.child("campaigns").problem("must list at least one campaign") }
            guard let id, let key else { return nil }
            return Located(value: Seller(id: id, apiKey: key, campaigns: Set(campaigns), rateLimit: readRateLimit(field.child("rate_limit"))), field: field)
        }
    }

    // MARK: Buyers

    static func readBuyer(_ field: YAMLField) -> Located<Buyer>? {
        guard field.mapping(known: [
            "id", "campaigns", "verticals", "ping", "post", "price", "filters", "caps", "floor", "priority", "weight",
            "paused", "duplicate_window_days", "format", "response", "destination", "min_duration_s", "ping_rate_limit",
            "template", "signing_secret", "maps", "reason_categories", "api_key",
        ]) else { return nil }
        let id = identifier(field.child("id"))
        let campaigns = field.child("campaigns").stringList()
        if campaigns.isEmpty { field.child("campaigns").problem("must list at least one campaign") }
        let verticals = Set(field.child("verticals").stringList())
        let ping = field.child("ping").isPresent ? readEndpoint(field.child("ping")) : nil
        let post = field.child("post").isPresent ? readEndpoint(field.child("post")) : nil
        var destination: String?
        if let text = field.child("destination").string() {
            destination = PhoneNumber.destination(text)
            if destination == nil { field.child("destination").problem("must be a phone number (+18005550101) or a sip: URI, got \"\(text)\"") }
        }
        let minDuration = field.child("min_duration_s").int(range: BidLimits.minDurationS)
        let price = field.child("price").money()
        if field.child("ping").isPresent == (price != nil) {
            field.problem("needs exactly one of ping (a bidding buyer) or price (a fixed-price buyer)")
        }
        let format = field.child("format").string() ?? "native"
        if format != "native" {
            field.child("format").problem("must be native (other formats: ping.body, ping.response, post.body, post.response)")
        }
        let signingSecret = field.child("signing_secret").string()
        if let signingSecret, signingSecret.utf8.count < 16 {
            field.child("signing_secret").problem("must be at least 16 characters")
        }
        let nativeMapping = readResponseMapping(field.child("response"))
        var buyer = Buyer(
            id: id ?? "", campaigns: campaigns, verticals: verticals, ping: ping, post: post,
            destination: destination, minDurationS: minDuration, fixedPrice: price, filters: readFilters(field.child("filters")), caps: readCaps(field.child("caps")),
            floor: field.child("floor").money() ?? .zero, priority: field.child("priority").int(range: -1000...1000) ?? 0,
            weight: field.child("weight").int(range: 0...1_000_000) ?? 1, paused: field.child("paused").bool() ?? false,
            duplicateWindowDays: field.child("duplicate_window_days").int(range: 0...3650) ?? 0,
            response: nativeMapping,
            pingRateLimit: readRateLimit(field.child("ping_rate_limit")),
            codec: readCodec(field, nativeMapping: nativeMapping), signingSecret: signingSecret
        )
        guard id != nil else { return nil }
        buyer.apiKey = readAPIKey(field.child("api_key"))
        return Located(value: buyer, field: field)
    }

    static func readEndpoint(_ field: YAMLField) -> Endpoint? {
        guard field.isPresent else {
            field.problem("is required")
            return nil
        }
        guard field.mapping(known: endpointKeys) else { return nil }
        guard let url = field.child("url").string(required: true) else { return nil }
        guard url.hasPrefix("http://") || url.hasPrefix("https://"), URL(string: url)?.host != nil else {
            field.child("url").problem("must be an http:// or https:// URL, got \"\(url)\"")
            return nil
        }
        let timeout = field.child("timeout_ms").int(range: 5...60_000) ?? 1000
        var testURL: String?
        if let text = field.child("test_url").string() {
            if (text.hasPrefix("http://") || text.hasPrefix("https://")) && URL(string: text)?.host != nil { testURL = text }
            else { field.child("test_url").problem("must be an http:// or https:// URL, got \"\(text)\"") }
        }
        return Endpoint(url: url, timeoutMs: timeout, headers: field.child("headers").stringMap(), testURL: testURL)
    }

    static func readRateLimit(_ field: YAMLField) -> RateLimit? {
        guard field.isPresent, field.mapping(known: ["per_second", "burst"]) else { return nil }
        guard let rate = field.child("per_second").int(required: true, range: 1...1_000_000) else { return nil }
        let burst = field.child("burst").int(range: 1...10_000_000) ?? rate
        return RateLimit(perSecond: Double(rate), burst: burst)
    }

    static func readFilters(_ field: YAMLField) -> BuyerFilters {
        guard field.mapping(known: ["states", "zips", "schedule", "rules"]) else { return BuyerFilters() }
        let states = field.child("states").elements().compactMap { element -> String? in
            guard let state = element.string(required: true)?.uppercased() else { return nil }
            guard state.count == 2, state.allSatisfy(\.isLetter) else {
                element.problem("must be a two-letter state code, got \"\(state)\"")
                return nil
            }
            return state
        }
        let zips = field.child("zips").elements().compactMap { element -> String? in
            guard let zip = element.string(required: true) else { return nil }
            guard (1...5).contains(zip.count), zip.allSatisfy(\.isNumber) else {
                element.problem("must be a zip code or a zip prefix of 1 to 5 digits, got \"\(zip)\"")
                return nil
            }
            return zip
        }
        let rules = field.child("rules").elements().compactMap { element -> FieldRule? in
            guard element.mapping(known: ["field", "one_of", "min", "max"]) else { return nil }
            guard let name = element.child("field").string(required: true) else { return nil }
            let oneOf = element.child("one_of").isPresent ? Set(element.child("one_of").stringList()) : nil
            let min = element.child("min").isPresent ? readSignedAmount(element.child("min")) : nil
            let max = element.child("max").isPresent ? readSignedAmount(element.child("max")) : nil
            if oneOf == nil, min == nil, max == nil { element.problem("needs one_of, min or max") }
            return FieldRule(field: name, oneOf: oneOf, min: min, max: max)
        }
        return BuyerFilters(states: Set(states), zips: zips, schedule: readSchedule(field.child("schedule")), rules: rules)
    }

    private static func readSignedAmount(_ field: YAMLField) -> Money? {
        guard let text = field.string() else { return nil }
        guard let amount = Money(decimal: text, allowNegative: true) else {
            field.problem("must be a number with at most 4 decimals, got \"\(text)\"")
            return nil
        }
        return amount
    }

    static func readSchedule(_ field: YAMLField) -> Schedule? {
        guard field.isPresent, field.mapping(known: ["timezone", "days", "hours"]) else { return nil }
        let zoneName = field.child("timezone").string(required: true) ?? "UTC"
        guard let timeZone = TimeZone(identifier: zoneName) else {
            field.child("timezone").problem("unknown time zone \"\(zoneName)\" (use an IANA name such as America/New_York)")
            return nil
        }
        var weekdays = Set(1...7)
        if field.child("days").isPresent {
            weekdays = Set(field.child("days").elements().compactMap { element -> Int? in
                guard let day = element.string(required: true)?.lowercased().prefix(3) else { return nil }
                guard let number = Schedule.weekdayNames[String(day)] else {
                    element.problem("must be a day name (mon, tue, wed, thu, fri, sat, sun), got \"\(day)\"")
                    return nil
                }
                return number
            })
        }
        var start = 0
        var end = 24 * 60
        if let hours = field.child("hours").string() {
            let parts = hours.split(separator: "-").map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2, let from = minuteOfDay(parts[0]), let to = minuteOfDay(parts[1]), from != to {
                start = from
                end = to
            } else {
                field.child("hours").problem("must be HH:MM-HH:MM in 24-hour time, such as 08:00-20:00, got \"\(hours)\"")
            }
        }
        return Schedule(timeZone: timeZone, weekdays: weekdays, startMinute: start, endMinute: end)
    }

    private static func minuteOfDay(_ text: String) -> Int? {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let hour = Int(parts[0]), let minute = Int(parts[1]),
              (0...24).contains(hour), (0..<60).contains(minute), hour * 60 + minute <= 24 * 60 else { return nil }
        return hour * 60 + minute
    }

    static func readCaps(_ field: YAMLField) -> BuyerCaps {
        guard field.mapping(known: ["hourly", "daily", "monthly", "daily_budget", "concurrent", "count"]) else { return BuyerCaps() }
        var countConversions = false
        if let count = field.child("count").string() {
            switch count {
            case "routed": countConversions = false
            case "conversions": countConversions = true
            default: field.child("count").problem("must be routed or conversions, got \"\(count)\"")
            }
        }
        return BuyerCaps(
            hourly: field.child("hourly").int(range: 0...10_000_000),
            daily: field.child("daily").int(range: 0...10_000_000),
            monthly: field.child("monthly").int(range: 0...100_000_000),
            dailyBudget: field.child("daily_budget").money(),
            concurrent: field.child("concurrent").int(range: 0...100_000),
            countConversions: countConversions
        )
    }

    static func readResponseMapping(_ field: YAMLField) -> ResponseMapping {
        var mapping = ResponseMapping()
        guard field.mapping(known: [
            "bid_path", "bid_id_path", "expires_in_path", "accepted_path", "accepted_values", "reason_path", "reference_path",
        ]) else { return mapping }
        func path(_ name: String) -> [String]? {
            field.child(name).string().map { $0.split(separator: ".").map(String.init) }
        }
        mapping.bidPath = path("bid_path") ?? mapping.bidPath
        mapping.bidIDPath = path("bid_id_path") ?? mapping.bidIDPath
        mapping.expiresInPath = path("expires_in_path") ?? mapping.expiresInPath
        mapping.acceptedPath = path("accepted_path") ?? mapping.acceptedPath
        mapping.reasonPath = path("reason_path") ?? mapping.reasonPath
        mapping.referencePath = path("reference_path") ?? mapping.referencePath
        if field.child("accepted_values").isPresent {
            mapping.acceptedValues = Set(field.child("accepted_values").stringList())
        }
        return mapping
    }

    // MARK: Shared checks

    static func identifier(_ field: YAMLField) -> String? {
        guard let id = field.string(required: true) else { return nil }
        let allowed = id.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
        guard !id.isEmpty, id.count <= 64, allowed else {
            field.problem("must be 1 to 64 letters, digits, - or _, got \"\(id)\"")
            return nil
        }
        return id
    }

    static func crossCheck(campaigns: [Located<Campaign>], sellers: [Located<Seller>], buyers: [Located<Buyer>], log: ProblemLog) {
        var campaignIDs = Set<String>()
        for campaign in campaigns where !campaignIDs.insert(campaign.value.id).inserted {
            campaign.field.child("id").problem("duplicate campaign id \"\(campaign.value.id)\"")
        }
        var sellerIDs = Set<String>()
        var keys = Set<String>()
        for seller in sellers {
            if !sellerIDs.insert(seller.value.id).inserted {
                seller.field.child("id").problem("duplicate seller id \"\(seller.value.id)\"")
            }
            if !keys.insert(seller.value.apiKey).inserted {
                seller.field.child("api_key").problem("the same API key is used by another seller")
            }
            for campaign in seller.value.campaigns.sorted() where !campaignIDs.contains(campaign) {
                seller.field.child("campaigns").problem("unknown campaign \"\(campaign)\"")
            }
        }
        var buyerIDs = Set<String>()
        for buyer in buyers {
            if !buyerIDs.insert(buyer.value.id).inserted {
                buyer.field.child("id").problem("duplicate buyer id \"\(buyer.value.id)\"")
            }
            for campaign in buyer.value.campaigns where !campaignIDs.contains(campaign) {
                buyer.field.child("campaigns").problem("unknown campaign \"\(campaign)\"")
            }
            let kinds = Set(buyer.value.campaigns.compactMap { id in campaigns.first { $0.value.id == id }?.value.kind })
            if kinds.contains(.lead), buyer.value.post == nil, !buyer.field.child("post").isPresent {
                buyer.field.child("post").problem("is required for a buyer of lead campaigns")
            }
            if kinds.contains(.call), buyer.value.fixedPrice != nil, buyer.value.destination == nil {
                buyer.field.child("destination").problem("is required for a fixed-price call buyer: where its calls go")
            }
            if let price = buyer.value.fixedPrice {
                for id in buyer.value.campaigns {
                    guard let campaign = campaigns.first(where: { $0.value.id == id })?.value, price > campaign.maxBid else { continue }
                    buyer.field.child("price").problem("is above the max_bid (\(campaign.maxBid)) of campaign \(id)")
                }
            }
        }
    }
}
