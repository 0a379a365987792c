import Crypto
import Foundation
import GavelCore
import GavelExchange
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// Twilio-compatible voice webhooks (CONTRACT v2, "Telephony"): a seller points a phone number's
/// voice URL at Gavel; each call is auctioned and answered with TwiML that dials the winner, and
/// the `<Dial action>` callback reports the outcome (conversion, or the next buyer).
///
/// Every request is verified with `X-Twilio-Signature` and the auth token of its `AccountSid`.
/// Retried webhooks (same `I-Twilio-Idempotency-Token`, else the same `CallSid` and `DialCallSid`)
/// get the same TwiML: the answer's routing is stored with the call's record in one transaction.
struct TwilioWebhooks: Sendable {
    let exchange: Exchange
    let logger: Logger
    /// One webhook per call at a time: a provider's duplicate (a retry while the first still runs)
    /// waits for the first and then gets its stored answer, so a call is never auctioned or moved twice.
    let inFlight = CallGate()

    static let voicePath = "/telephony/twilio/voice"
    static let dialStatusPath = "/telephony/twilio/dial-status"
    static let recordingPath = "/telephony/twilio/recording"
    static let maxBodyBytes = 64 * 1024

    func register(on router: Router<GavelRequestContext>) {
        router.post(RouterPath(Self.voicePath)) { request, _ in await self.voice(request) }
        router.post(RouterPath(Self.dialStatusPath)) { request, _ in await self.dialStatus(request) }
        router.post(RouterPath(Self.recordingPath)) { request, _ in await self.recording(request) }
    }

    /// A webhook checked, or the answer that refuses it.
    enum Verification {
        case success(Webhook)
        case failure(Response)
    }

    /// A verified webhook: its parameters and where the provider reaches Gavel.
    struct Webhook {
        var parameters: [String: String]
        /// `public_base_url`, else the request's scheme and `Host`: for the callback URLs in TwiML.
        var baseURL: String
        var idempotencyToken: String?

        subscript(_ name: String) -> String? { parameters[name].flatMap { $0.isEmpty ? nil : $0 } }
    }

    // MARK: Handlers

    func voice(_ request: Request) async -> Response {
        let arrival = ContinuousClock.now
        let config = exchange.config
        let webhook: Webhook
        switch await verify(request, config: config) {
        case .success(let verified): webhook = verified
        case .failure(let refusal): return refusal
        }
        guard let callSid = webhook["CallSid"], TwilioWebhooks.isSid(callSid) else { return Self.badRequest("CallSid") }
        let callID = Exchange.providerCallPrefix + callSid
        let dialled = webhook["To"].flatMap(PhoneNumber.e164)
        guard let dialled, let line = config.phoneLine(dialled: dialled), let campaign = config.campaigns[line.campaignID] else {
            logger.notice("voice webhook for a number no campaign takes", metadata: ["auction_id": "\(callID)", "to": "\(webhook["To"] ?? "-")"])
            return Self.twiml(TwiML.say("Sorry, this number is not in service. Goodbye."))
        }
        guard let sellerID = line.sellerID, let seller = config.sellers.first(where: { $0.id == sellerID }) else {
            logger.error("phone line has no seller: set inbound_numbers[].seller or tracking.seller", metadata: [
                "auction_id": "\(callID)", "campaign": "\(campaign.id)",
            ])
            return Self.twiml(TwiML.noBuyer(campaign.phoneLines))
        }
        // Keyed by the CallSid, not the provider's idempotency token: a repeat of this call under any
        // token (or none) gets the stored answer, with one read and no second auction.
        let ticket = IdempotencyTicket(scope: "twilio voice " + callSid, bodyHash: "twilio")
        guard await inFlight.enter(callID) else { return JSONResponses.unavailable(.overloaded("a webhook of this call is still running")) }
        defer { inFlight.leave(callID) }
        guard await holdAcrossNodes(callSid) else {
            return JSONResponses.unavailable(.overloaded("a webhook of this call is still running on another node"))
        }
        let response = await { () async -> Response in
        do throws(ExchangeError) {
            if let previous = try await exchange.previousAnswer(for: ticket) {
                return Self.twiml(answer(forRouting: previous.response, campaign: campaign, webhook: webhook))
            }
        } catch {
            return JSONResponses.unavailable(error)
        }
        do throws(ExchangeError) {
            try exchange.admitRound()
        } catch {
            return JSONResponses.unavailable(error)
        }
        defer { exchange.roundEnded() }
        // A withheld or malformed caller id is auctioned without a number (no caller hash).
        let caller = webhook["From"].flatMap(PhoneNumber.e164).flatMap { Self.withheldCallerIDs.contains($0) ? nil : $0 } ?? ""
        let state = webhook["FromState"].map { $0.uppercased() }.flatMap { $0.count == 2 && $0.allSatisfy(\.isLetter) ? $0 : nil }
        let zip = webhook["FromZip"].flatMap { $0.count == 5 && $0.allSatisfy(\.isNumber) ? $0 : nil }
        let submission = CallSubmission(campaign: campaign, callerNumber: caller, state: state, zip: zip, dialed: dialled)
        do throws(ExchangeError) {
            let routing = try await exchange.runCall(submission, seller: seller, arrival: arrival, ticket: ticket, callID: callID)
            return Self.twiml(answer(forRouting: routing.json.serialized, campaign: campaign, webhook: webhook))
        } catch {
            return JSONResponses.unavailable(error)
        }
        }()
        await releaseAcrossNodes(callSid)
        return response
    }

    func dialStatus(_ request: Request) async -> Response {
        let config = exchange.config
        let webhook: Webhook
        switch await verify(request, config: config) {
        case .success(let verified): webhook = verified
        case .failure(let refusal): return refusal
        }
        guard let callSid = webhook["CallSid"], TwilioWebhooks.isSid(callSid) else { return Self.badRequest("CallSid") }
        guard let dialStatus = webhook["DialCallStatus"] else { return Self.badRequest("DialCallStatus") }
        let callID = Exchange.providerCallPrefix + callSid
        let key = webhook.idempotencyToken ?? "\(callSid) \(webhook["DialCallSid"] ?? "-") \(dialStatus)"
        let ticket = IdempotencyTicket(scope: "twilio dial-status " + key, bodyHash: "twilio")
        guard await inFlight.enter(callID) else { return JSONResponses.unavailable(.overloaded("a webhook of this call is still running")) }
        defer { inFlight.leave(callID) }
        guard await holdAcrossNodes(callSid) else {
            return JSONResponses.unavailable(.overloaded("a webhook of this call is still running on another node"))
        }
        let response = await { () async -> Response in
        let callerOnLine = webhook["CallStatus"] == "in-progress"
        let event: CallEvent
        switch dialStatus {
        case "completed", "answered":
            let duration = webhook["DialCallDuration"].flatMap(Int.init).map { min(max($0, 0), 86_400) } ?? 0
            event = CallEvent(kind: .completed, durationS: duration)
        case "busy", "no-answer", "failed":
            event = callerOnLine ? CallEvent(kind: .failed, detail: dialStatus) : CallEvent(kind: .hungUp, detail: "\(dialStatus), caller gone")
        case "canceled":
            event = CallEvent(kind: .hungUp, detail: "canceled")
        default:
            return Self.badRequest("DialCallStatus")
        }
        do throws(ExchangeError) {
            if let previous = try await exchange.previousAnswer(for: ticket) {
                return Self.twiml(answer(forEvent: previous.response, callID: callID, config: config, webhook: webhook, callerOnLine: callerOnLine))
            }
        } catch {
            return JSONResponses.unavailable(error)
        }
        do throws(Exchange.PostError) {
            let outcome = try await exchange.handleCallEvent(callID: callID, event: event, seller: nil, ticket: ticket)
            return Self.twiml(answer(forEvent: outcome.json(callID: callID).serialized, callID: callID, config: config, webhook: webhook,
                                     callerOnLine: callerOnLine))
        } catch {
            switch error {
            case .request(let problem):
                // An unknown or ended call: nothing to route; the provider hangs up.
                logger.notice("dial status for a call that is not live", metadata: ["auction_id": "\(callID)", "reason": "\(problem.code)"])
                return Self.twiml(TwiML.hangUp)
            case .exchange(let failure):
                return JSONResponses.unavailable(failure)
            }
        }
        }()
        await releaseAcrossNodes(callSid)
        return response
    }

    /// On a cluster a call's webhooks also run one at a time across nodes (a provider's retry may
    /// reach another node while the first still runs): a repeat waits up to 3 s for the mark, then
    /// finds the first one's stored answer. One node (SQLite): always held at once.
    private func holdAcrossNodes(_ callSid: String) async -> Bool {
        let giveUpAt = ContinuousClock.now + .seconds(3)
        while true {
            guard let held = try? await exchange.beginKeyedRequest(scope: "twilio call " + callSid) else { return false }
            if held { return true }
            guard ContinuousClock.now < giveUpAt else { return false }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    private func releaseAcrossNodes(_ callSid: String) async {
        await exchange.endKeyedRequest(scope: "twilio call " + callSid)
    }

    func recording(_ request: Request) async -> Response {
        let webhook: Webhook
        switch await verify(request, config: exchange.config) {
        case .success(let verified): webhook = verified
        case .failure(let refusal): return refusal
        }
        guard let callSid = webhook["CallSid"], TwilioWebhooks.isSid(callSid) else { return Self.badRequest("CallSid") }
        guard let url = webhook["RecordingUrl"], url.hasPrefix("https://") || url.hasPrefix("http://"), url.count <= 1024 else {
            return Self.badRequest("RecordingUrl")
        }
        do {
            try await exchange.attachRecording(callID: Exchange.providerCallPrefix + callSid, url: url)
        } catch {
            return JSONResponses.unavailable(error)
        }
        return Self.twiml(TwiML.empty)
    }

    // MARK: TwiML from the stored routing

    /// The voice webhook's TwiML for a routing answer (`CallRouting.json`).
    private func answer(forRouting text: String, campaign: Campaign, webhook: Webhook) -> String {
        let routing = (try? JSONValue.parse(text)) ?? .null
        guard routing["status"] == "routed", let destination = routing["destination"]?.stringValue else {
            return TwiML.noBuyer(campaign.phoneLines)
        }
        return dial(destination, campaign: campaign, webhook: webhook)
    }

    /// The dial-status TwiML for an event's outcome (`CallEventOutcome.json`).
    private func answer(forEvent text: String, callID: String, config: ExchangeConfig, webhook: Webhook, callerOnLine: Bool) -> String {
        let outcome = (try? JSONValue.parse(text)) ?? .null
        let campaign = webhook["To"].flatMap(PhoneNumber.e164).flatMap { config.phoneLine(dialled: $0) }.flatMap { config.campaigns[$0.campaignID] }
        switch outcome["status"]?.stringValue {
        case "routed"?:
            guard let destination = outcome["destination"]?.stringValue, let campaign, callerOnLine else { return TwiML.hangUp }
            return dial(destination, campaign: campaign, webhook: webhook)
        case "unrouted"?:
            guard let campaign, callerOnLine else { return TwiML.hangUp }
            return TwiML.noBuyer(campaign.phoneLines)
        default:
            return TwiML.hangUp
        }
    }

    private func dial(_ destination: String, campaign: Campaign, webhook: Webhook) -> String {
        TwiML.dial(destination, lines: campaign.phoneLines, timeLimitS: campaign.maxCallS,
                   action: webhook.baseURL + Self.dialStatusPath, recordingCallback: webhook.baseURL + Self.recordingPath)
    }

    // MARK: Verification

    /// The body read (413 past 64 KiB), parsed as a form, and its signature checked against the
    /// auth token of its `AccountSid` (403 for an unknown account or a bad signature).
    private func verify(_ request: Request, config: ExchangeConfig) async -> Verification {
        let body: ByteBuffer
        do { body = try await request.body.collect(upTo: Self.maxBodyBytes) } catch {
            return .failure(JSONResponses.error(RequestError(status: 413, code: "body_too_large", message: "a webhook is at most 64 KiB")))
        }
        let pairs = FormFields.parse(String(buffer: body))
        var parameters: [String: String] = [:]
        for (name, value) in pairs where parameters[name] == nil { parameters[name] = value }
        // Behind a TLS terminator the provider signed an https URL: its X-Forwarded-Proto says so. A
        // forged one only changes which URL is checked; the signature still needs the auth token.
        let forwarded = request.headers[HTTPField.Name("X-Forwarded-Proto")!]?.lowercased()
        let scheme = forwarded == "https" ? "https" : "http"
        let base = config.telephony.publicBaseURL ?? scheme + "://" + (request.head.authority ?? "localhost")
        let query = request.uri.query.map { "?" + $0 } ?? ""
        let url = base + request.uri.path + query
        guard let account = parameters["AccountSid"], let token = config.telephony.twilioAccounts[account] else {
            logger.notice("webhook refused: unknown AccountSid", metadata: ["path": "\(request.uri.path)"])
            return .failure(Self.forbidden)
        }
        guard let signature = request.headers[HTTPField.Name("X-Twilio-Signature")!],
              TwilioSignature.isValid(signature, url: url, parameters: pairs, authToken: token) else {
            logger.notice("webhook refused: bad X-Twilio-Signature", metadata: ["path": "\(request.uri.path)", "signed_url": "\(url)"])
            return .failure(Self.forbidden)
        }
        let token_ = request.headers[HTTPField.Name("I-Twilio-Idempotency-Token")!].flatMap { $0.isEmpty || $0.count > 255 ? nil : $0 }
        return .success(Webhook(parameters: parameters, baseURL: base, idempotencyToken: token_))
    }

    /// What Twilio puts in `From` for a withheld caller id: ANONYMOUS, RESTRICTED, UNAVAILABLE,
    /// BLOCKED and UNKNOWN spelled on a keypad (words like `anonymous` do not parse as numbers at all).
    static let withheldCallerIDs: Set<String> = ["+266696687", "+7378742833", "+8656696", "+2562533", "+86282452253"]

    /// Twilio's ids: two letters and 32 hex digits (`CA…`); other TwiML providers' ids are accepted
    /// when they are short and plain.
    static func isSid(_ text: String) -> Bool {
        (2...64).contains(text.count) && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
    }

    static func twiml(_ document: String) -> Response {
        Response(status: .ok, headers: [.contentType: TwiML.contentType], body: ResponseBody(byteBuffer: ByteBuffer(string: document)))
    }

    static let forbidden = JSONResponses.error(RequestError(
        status: 403, code: "bad_signature", message: "X-Twilio-Signature does not match this request and its account's auth token"))

    static func badRequest(_ field: String) -> Response {
        JSONResponses.error(RequestError(status: 400, code: "invalid_webhook", message: "\(field) is missing or malformed", field: field))
    }
}

/// `X-Twilio-Signature`: base64 of HMAC-SHA1(auth token, URL + each POST parameter's name and
/// value, sorted by name).
enum TwilioSignature {
    static func expected(url: String, parameters: [(String, String)], authToken: String) -> String {
        var text = url
        for (name, value) in parameters.sorted(by: { $0.0 == $1.0 ? $0.1 < $1.1 : $0.0 < $1.0 }) { text += name + value }
        let code = HMAC<Insecure.SHA1>.authenticationCode(for: Array(text.utf8), using: SymmetricKey(data: Array(authToken.utf8)))
        return Data(code).base64EncodedString()
    }

    static func isValid(_ signature: String, url: String, parameters: [(String, String)], authToken: String) -> Bool {
        let expected = Array(expected(url: url, parameters: parameters, authToken: authToken).utf8)
        let given = Array(signature.utf8)
        guard expected.count == given.count else { return false }
        // Constant time: how much of a guess matched must not show in the answer's timing.
        var difference: UInt8 = 0
        for index in 0..<expected.count { difference |= expected[index] ^ given[index] }
        return difference == 0
    }
}

/// `application/x-www-form-urlencoded` bodies.
enum FormFields {
    static func parse(_ text: String) -> [(String, String)] {
        text.split(separator: "&", omittingEmptySubsequences: true).map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (decode(parts[0]), parts.count > 1 ? decode(parts[1]) : "")
        }
    }

    static func decode(_ text: Substring) -> String {
        let spaced = text.replacingOccurrences(of: "+", with: " ")
        return spaced.removingPercentEncoding ?? spaced
    }
}

/// Call ids with a webhook running. `enter` waits (up to 10 s) for the call's earlier webhook to end.
final class CallGate: Sendable {
    private let running = Mutex<Set<String>>([])

    func enter(_ callID: String) async -> Bool {
        for _ in 0..<2_000 {
            if running.withLock({ $0.insert(callID).inserted }) { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return false
    }

    func leave(_ callID: String) { _ = running.withLock { $0.remove(callID) } }
}
