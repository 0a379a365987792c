import GavelCore

/// A buyer connected by config alone: its own request shapes and answer formats. Each part left
/// out falls back to the native protocol (a buyer may template only its post, say).
public struct TemplateBuyerCodec: BuyerCodec, Hashable {
    public struct Spec: Sendable, Hashable {
        public var ping: RequestTemplate?
        public var pingAnswer: PingAnswerTemplate?
        public var post: RequestTemplate?
        public var postAnswer: PostAnswerTemplate?
        public var reasons: ReasonCategories
        /// The native response mapping, for the parts not templated.
        public var nativeMapping: ResponseMapping

        public init(ping: RequestTemplate? = nil, pingAnswer: PingAnswerTemplate? = nil, post: RequestTemplate? = nil,
                    postAnswer: PostAnswerTemplate? = nil, reasons: ReasonCategories = ReasonCategories(),
                    nativeMapping: ResponseMapping = ResponseMapping()) {
            self.ping = ping
            self.pingAnswer = pingAnswer
            self.post = post
            self.postAnswer = postAnswer
            self.reasons = reasons
            self.nativeMapping = nativeMapping
        }

        public var isNative: Bool { ping == nil && pingAnswer == nil && post == nil && postAnswer == nil }
    }

    public let spec: Spec
    private let native: NativeBuyerCodec

    /// Checks the spec (no PII in pings, kept values exist, bodies fit their formats) and builds the codec.
    public init(_ spec: Spec) throws(TemplateError) {
        var problems: [TemplateProblem] = []
        let keptNames = Set(spec.pingAnswer?.keep.map(\.name) ?? [])
        for problem in spec.ping?.problems(for: .ping) ?? [] { problems.append(TemplateProblem("ping." + problem.path, problem.message)) }
        for problem in spec.post?.problems(for: .post, keptNames: keptNames) ?? [] {
            problems.append(TemplateProblem("post." + problem.path, problem.message))
        }
        if let answer = spec.pingAnswer {
            let wildcard = [answer.bid, answer.bidID, answer.expiresInS, answer.destination, answer.minDurationS].compactMap { $0 }
                .filter(\.hasWildcard)
            if !wildcard.isEmpty, answer.bid?.hasWildcard != true {
                problems.append(TemplateProblem("ping.response.bid", "other values use [*]: the bid path must too, so they are read from the winning bid"))
            }
        }
        guard problems.isEmpty else { throw TemplateError(problems: problems) }
        self.spec = spec
        self.native = NativeBuyerCodec(mapping: spec.nativeMapping)
    }

    public var name: String { "template" }

    public func pingRequest(_ input: PingInput, endpoint: Endpoint) -> BuyerRequest {
        guard let template = spec.ping else { return native.pingRequest(input, endpoint: endpoint) }
        return template.render(RenderScope(ping: input), url: endpoint.url) {
            (input.nativeTemplate ?? BuyerProtocol.PingTemplate(
                auctionID: input.auctionID, campaign: input.campaign, lead: input.lead, caller: input.caller, consent: input.consent)
            ).body(tmaxMs: input.tmaxMs)
        }
    }

    public func parsePing(status: Int, body: [UInt8], maxBid: Money) -> BidAnswer {
        guard let answer = spec.pingAnswer else { return native.parsePing(status: status, body: body, maxBid: maxBid) }
        return answer.interpret(status: status, body: body, maxBid: maxBid, reasons: spec.reasons)
    }

    public func postRequest(_ input: PostInput, endpoint: Endpoint) -> BuyerRequest {
        guard let template = spec.post else { return native.postRequest(input, endpoint: endpoint) }
        return template.render(RenderScope(post: input), url: endpoint.url) {
            BuyerProtocol.postBody(auctionID: input.auctionID, bid: input.bid, lead: input.lead, contact: input.contact, consent: input.consent)
        }
    }

    public func parsePost(status: Int, body: [UInt8]) -> PostAnswer {
        guard let answer = spec.postAnswer else {
            var parsed = native.parsePost(status: status, body: body)
            if let code = parsed.buyerReason?.code { parsed.buyerReason = spec.reasons.reason(for: code) }
            return parsed
        }
        return answer.interpret(status: status, body: body, reasons: spec.reasons)
    }
}

/// Every problem of a buyer template.
public struct TemplateError: Error, Sendable {
    public var problems: [TemplateProblem]
}
