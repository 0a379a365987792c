import Crypto
import Foundation
import FoundationXML
import GavelConfig
import GavelCore
import GavelPing
import Testing

/// A simulated Twilio: the real webhook sequences, form-encoded as Twilio documents them, signed
/// with the account's auth token, against the real server, its SQLite file and real HTTP buyers.
/// Assertions are on the TwiML (parsed as XML), the round records and the books.
@Suite(.serialized)
struct TwilioWebhookTests {
    static let account = "AC" + String(repeating: "a1", count: 16)
    static let authToken = "test-auth-token-0123456789abcdef"
    static let inbound = "+18005550300"

    static let campaigns = """
        campaigns:
          - id: calls
            kind: call
            vertical: home_services
            tmax_ms: 3000
            ping_timeout_ms: 2000
            floor: 1.00
            payout: {share: 0.5}
            bid_hold_s: 30
            max_call_s: 600
            inbound_numbers: [{number: "\(inbound)", seller: seller-one}]
            fallback_number: "+18005550999"
            caller_id: "+18005550301"
            record_calls: true
            tracking:
              seller: seller-one
              pools: {default: ["+18005550401"]}
              fallbacks: {default: "+18005550499"}
          - {id: autos, kind: lead, vertical: auto_insurance, tmax_ms: 5000, floor: 1.00}
          - {id: tort, kind: lead, vertical: legal, tmax_ms: 5000, floor: 1.00}
          - {id: tiny, kind: lead, vertical: auto_insurance, tmax_ms: 300, ping_timeout_ms: 200}
        """

    /// Two call buyers: `best` bids 40, `second` 30; each converts after 60 s.
    static func harness(extraBuyers: [TestExchange.BuyerSpec] = [], withTelephony: Bool = true) async throws -> TestExchange {
        let harness = try await TestExchange(campaignYAML: campaigns, buyers: [
            callBidder("best", bid: "40.00", destination: "+18005550101", minDuration: 60, yaml: "duplicate_window_days: 30"),
            callBidder("second", bid: "30.00", destination: "sip:agent@pbx.second.example", minDuration: 60),
        ] + extraBuyers)
        if withTelephony {
            try "twilio:\n  accounts:\n    - {account_sid: \(account), auth_token: \(authToken)}\n"
                .write(toFile: harness.configPath + "/telephony.yaml", atomically: true, encoding: .utf8)
            harness.exchange.reload(try ConfigLoader.load(directory: harness.configPath))
        }
        try await harness.startHTTP()
        return harness
    }

    /// A signed webhook, as Twilio sends it.
    struct Webhook {
        var path: String
        var parameters: [(String, String)]
        var token: String? = nil
        var signature: String? = nil
    }

    static func sign(url: String, parameters: [(String, String)], token: String = authToken) -> String {
        // Twilio's documented algorithm, written here independently of the server's.
        let text = url + parameters.sorted { $0.0 < $1.0 }.map { $0.0 + $0.1 }.joined()
        let code = HMAC<Insecure.SHA1>.authenticationCode(for: Array(text.utf8), using: SymmetricKey(data: Array(token.utf8)))
        return Data(code).base64EncodedString()
    }

    static func form(_ parameters: [(String, String)]) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return parameters.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? $0.1)" }.joined(separator: "&")
    }

    static func send(_ webhook: Webhook, to harness: TestExchange) async throws -> (status: Int, body: String) {
        let url = "http://127.0.0.1:\(harness.port)\(webhook.path)"
        var headers: [(name: String, value: String)] = [
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Twilio-Signature", webhook.signature ?? sign(url: url, parameters: webhook.parameters)),
        ]
        if let token = webhook.token { headers.append(("I-Twilio-Idempotency-Token", token)) }
        let request = HTTPRequest(url: url, method: .post, headers: headers, body: Array(form(webhook.parameters).utf8), timeoutMs: 10_000)
        let response = try await harness.client.send(request).get()
        return (response.status, String(decoding: response.body, as: UTF8.self))
    }

    static func voice(callSid: String, from: String = "+14155550123", to: String = inbound) -> Webhook {
        Webhook(path: "/telephony/twilio/voice", parameters: [
            ("AccountSid", account), ("ApiVersion", "2010-04-01"), ("CallSid", callSid), ("CallStatus", "ringing"),
            ("Called", to), ("Caller", from), ("Direction", "inbound"), ("From", from), ("FromCity", "SAN FRANCISCO"),
            ("FromCountry", "US"), ("FromState", "CA"), ("FromZip", "94107"), ("To", to), ("ToCountry", "US"),
        ], token: "tok-voice-\(callSid)")
    }

    static func dialStatus(callSid: String, status: String, duration: Int? = nil, callStatus: String = "in-progress", dialSid: String,
                           to: String = inbound) -> Webhook {
        var parameters = [
            ("AccountSid", account), ("CallSid", callSid), ("CallStatus", callStatus), ("DialCallSid", dialSid),
            ("DialCallStatus", status), ("Direction", "inbound"), ("From", "+14155550123"), ("To", to),
        ]
        if let duration { parameters.append(("DialCallDuration", String(duration))) }
        return Webhook(path: "/telephony/twilio/dial-status", parameters: parameters, token: "tok-\(dialSid)-\(status)")
    }

    static func sid(_ prefix: String, _ n: Int) -> String { prefix + String(format: "%032x", n) }

    /// The TwiML's `<Dial>` (its attributes and the number or SIP URI), or its `<Say>` and `<Hangup>`.
    struct Document {
        let root: XMLElement
        init(_ text: String) throws {
            root = try #require(try XMLDocument(xmlString: text).rootElement())
            #expect(root.name == "Response")
        }
        var dial: XMLElement? { root.elements(forName: "Dial").first }
        func dialAttribute(_ name: String) -> String? { dial?.attribute(forName: name)?.stringValue }
        var number: String? { dial?.elements(forName: "Number").first?.stringValue }
        var sip: String? { dial?.elements(forName: "Sip").first?.stringValue }
        var says: String? { root.elements(forName: "Say").first?.stringValue }
        var hangsUp: Bool { !root.elements(forName: "Hangup").isEmpty }
    }

    @Test func answeredAndConverted() async throws {
        let harness = try await Self.harness()
        let callSid = Self.sid("CA", 1)
        let answer = try await Self.send(Self.voice(callSid: callSid), to: harness)
        #expect(answer.status == 200)
        let twiml = try Document(answer.body)
        #expect(twiml.number == "+18005550101")
        #expect(twiml.dialAttribute("action") == "http://127.0.0.1:\(harness.port)/telephony/twilio/dial-status")
        #expect(twiml.dialAttribute("timeLimit") == "600")
        #expect(twiml.dialAttribute("callerId") == "+18005550301")
        #expect(twiml.dialAttribute("record") == "record-from-answer")
        #expect(twiml.dialAttribute("recordingStatusCallback") == "http://127.0.0.1:\(harness.port)/telephony/twilio/recording")

        let done = try await Self.send(Self.dialStatus(callSid: callSid, status: "completed", duration: 95, dialSid: Self.sid("CA", 101)), to: harness)
        #expect(try Document(done.body).hangsUp)
        let recording = Webhook(path: "/telephony/twilio/recording", parameters: [
            ("AccountSid", Self.account), ("CallSid", callSid), ("RecordingSid", Self.sid("RE", 1)),
            ("RecordingStatus", "completed"), ("RecordingUrl", "https://api.twilio.com/2010-04-01/Accounts/\(Self.account)/Recordings/RE1"),
        ])
        #expect(try await Self.send(recording, to: harness).status == 200)

        let record = try await harness.round("call_tw_" + callSid)
        #expect(record.status == "converted")
        #expect(record.winnerID == "best")
        #expect(record.payout == Money(20))
        #expect(record.sellerID == "seller-one")
        #expect(record.recordingURL?.hasSuffix("/Recordings/RE1") == true)
        #expect(await harness.exchange.liveCallCount() == 0)
        await harness.shutdown()
    }

    @Test func tooShortIsNotConverted() async throws {
        let harness = try await Self.harness()
        let callSid = Self.sid("CA", 2)
        _ = try await Self.send(Self.voice(callSid: callSid), to: harness)
        _ = try await Self.send(Self.dialStatus(callSid: callSid, status: "completed", duration: 12, dialSid: Self.sid("CA", 201)), to: harness)
        let record = try await harness.round("call_tw_" + callSid)
        #expect(record.status == "not_converted")
        #expect(record.payout == .zero)
        await harness.shutdown()
    }

    @Test func busyThenTheNextBuyerThenAllBusyGoesToTheFallback() async throws {
        let harness = try await Self.harness()
        let callSid = Self.sid("CA", 3)
        _ = try await Self.send(Self.voice(callSid: callSid), to: harness)
        let busy = Self.dialStatus(callSid: callSid, status: "busy", dialSid: Self.sid("CA", 301))
        let next = try Document(try await Self.send(busy, to: harness).body)
        #expect(next.sip == "sip:agent@pbx.second.example")
        #expect(next.dialAttribute("action")?.hasSuffix("/telephony/twilio/dial-status") == true)

        // Twilio retries the same callback: the same TwiML, and the second buyer is not failed too.
        let retried = try Document(try await Self.send(busy, to: harness).body)
        #expect(retried.sip == "sip:agent@pbx.second.example")

        let noAnswer = Self.dialStatus(callSid: callSid, status: "no-answer", dialSid: Self.sid("CA", 302))
        let fallback = try Document(try await Self.send(noAnswer, to: harness).body)
        #expect(fallback.number == "+18005550999")
        #expect(fallback.dialAttribute("action") == nil, "the fallback is dialled with no callback into routing")
        let record = try await harness.round("call_tw_" + callSid)
        #expect(record.status == "unrouted")
        #expect(record.posts.map(\.result) == ["post_failed", "post_failed"])
        await harness.shutdown()
    }

    @Test func aCallerWhoHangsUpEndsTheCallUnbilled() async throws {
        let harness = try await Self.harness()
        let callSid = Self.sid("CA", 4)
        _ = try await Self.send(Self.voice(callSid: callSid), to: harness)
        let gone = Self.dialStatus(callSid: callSid, status: "no-answer", callStatus: "completed", dialSid: Self.sid("CA", 401))
        #expect(try Document(try await Self.send(gone, to: harness).body).hangsUp)
        let record = try await harness.round("call_tw_" + callSid)
        #expect(record.status == "hung_up")
        #expect(await harness.exchange.liveCallCount() == 0)

        let other = Self.sid("CA", 5)
        _ = try await Self.send(Self.voice(callSid: other), to: harness)
        let canceled = Self.dialStatus(callSid: other, status: "canceled", callStatus: "canceled", dialSid: Self.sid("CA", 501))
        #expect(try Document(try await Self.send(canceled, to: harness).body).hangsUp)
        #expect(try await harness.round("call_tw_" + other).status == "hung_up")
        await harness.shutdown()
    }

    @Test func aRetriedVoiceWebhookGetsTheSameTwiMLAndOneRound() async throws {
        let harness = try await Self.harness()
        let callSid = Self.sid("CA", 6)
        let first = try await Self.send(Self.voice(callSid: callSid), to: harness)
        let again = try await Self.send(Self.voice(callSid: callSid), to: harness)
        #expect(first.body == again.body)
        // A repeat under another token is answered from the call's record, not auctioned again.
        var otherToken = Self.voice(callSid: callSid)
        otherToken.token = "another-token"
        let third = try await Self.send(otherToken, to: harness)
        #expect(try Document(third.body).number == "+18005550101")
        #expect(await harness.exchange.liveCallCount() == 1)
        await harness.shutdown()
    }

    @Test func concurrentDuplicatesAuctionOnceAndSellersCannotPostEvents() async throws {
        let harness = try await Self.harness()
        let callSid = Self.sid("CA", 14)
        // Twilio retrying while the first webhook still runs: one auction, the same TwiML.
        async let first = Self.send(Self.voice(callSid: callSid), to: harness)
        async let second = Self.send(Self.voice(callSid: callSid), to: harness)
        let (a, b) = try await (first, second)
        #expect(a.status == 200 && b.status == 200)
        #expect(a.body == b.body)
        #expect(await harness.exchange.liveCallCount() == 1)
        // One routed call counted against the buyer, not two.
        let best = try #require(harness.exchange.config.buyer(id: "best"))
        #expect(await harness.exchange.ledger.capUsage(buyer: best, at: Date()).day == 1)
        // The seller may not report (and so bill) a call its provider bridges.
        let forged = try await harness.http(.post, "/v1/calls/call_tw_\(callSid)/events", body: #"{"type": "completed", "duration_s": 999}"#)
        #expect(forged.status == 404)
        #expect(try await harness.round("call_tw_" + callSid).status == "routed")
        await harness.shutdown()
    }

    @Test func signedGarbageGetsAClearAnswerNeverAServerError() async throws {
        let harness = try await Self.harness()
        func signed(_ path: String, _ parameters: [(String, String)]) async throws -> Int {
            try await Self.send(Webhook(path: path, parameters: [("AccountSid", Self.account)] + parameters), to: harness).status
        }
        // Malformed ids, numbers, statuses and durations, each signed correctly.
        #expect(try await signed("/telephony/twilio/voice", [("CallSid", "CA'; DROP TABLE rounds;--"), ("To", Self.inbound)]) == 400)
        #expect(try await signed("/telephony/twilio/voice", [("CallSid", String(repeating: "C", count: 500)), ("To", Self.inbound)]) == 400)
        #expect(try await signed("/telephony/twilio/voice", [("CallSid", Self.sid("CA", 20))]) == 200, "no To: not in service")
        #expect(try await signed("/telephony/twilio/voice", [("CallSid", Self.sid("CA", 21)), ("To", "not a number"), ("From", "\u{0}\u{7}")]) == 200)
        #expect(try await signed("/telephony/twilio/voice", [("CallSid", Self.sid("CA", 22)), ("To", Self.inbound), ("From", String(repeating: "9", count: 5000)),
                                                              ("FromState", "<xml>"), ("FromZip", "999999999")]) == 200)
        #expect(try await signed("/telephony/twilio/dial-status", [("CallSid", Self.sid("CA", 22))]) == 400, "no DialCallStatus")
        #expect(try await signed("/telephony/twilio/dial-status", [("CallSid", Self.sid("CA", 22)), ("DialCallStatus", "exploded")]) == 400)
        #expect(try await signed("/telephony/twilio/dial-status", [("CallSid", Self.sid("CA", 22)), ("DialCallStatus", "completed"),
                                                                    ("DialCallDuration", "99999999999999999999999"), ("CallStatus", "in-progress")]) == 200)
        #expect(try await signed("/telephony/twilio/dial-status", [("CallSid", Self.sid("CA", 99)), ("DialCallStatus", "busy"),
                                                                    ("CallStatus", "in-progress")]) == 200, "an unknown call: hang up")
        #expect(try await signed("/telephony/twilio/recording", [("CallSid", Self.sid("CA", 22)), ("RecordingUrl", "javascript:alert(1)")]) == 400)
        // A body past 64 KiB is refused before anything is parsed.
        let huge = Webhook(path: "/telephony/twilio/voice", parameters: [("AccountSid", Self.account), ("Junk", String(repeating: "x", count: 70_000))])
        #expect(try await Self.send(huge, to: harness).status == 413)
        await harness.shutdown()
    }

    @Test func badSignaturesAndUnknownAccountsAreRefused() async throws {
        let harness = try await Self.harness()
        var forged = Self.voice(callSid: Self.sid("CA", 7))
        forged.signature = Self.sign(url: "http://127.0.0.1:\(harness.port)/telephony/twilio/voice", parameters: forged.parameters,
                                     token: "not-the-token-at-all-000000000")
        #expect(try await Self.send(forged, to: harness).status == 403)
        var tampered = Self.voice(callSid: Self.sid("CA", 7))
        tampered.signature = Self.sign(url: "http://127.0.0.1:\(harness.port)/telephony/twilio/voice", parameters: tampered.parameters)
        tampered.parameters[7] = ("From", "+14155550999")
        #expect(try await Self.send(tampered, to: harness).status == 403)
        var stranger = Self.voice(callSid: Self.sid("CA", 7))
        stranger.parameters[0] = ("AccountSid", "AC" + String(repeating: "b2", count: 16))
        #expect(try await Self.send(stranger, to: harness).status == 403)
        #expect(await harness.exchange.liveCallCount() == 0)
        await harness.shutdown()
    }

    @Test func aCallGoesOnAcrossARestart() async throws {
        let harness = try await Self.harness()
        let callSid = Self.sid("CA", 8)
        #expect(try Document(try await Self.send(Self.voice(callSid: callSid), to: harness).body).number == "+18005550101")
        await harness.stopServer()
        try await harness.openServer()
        try await harness.startHTTP()
        let done = try await Self.send(Self.dialStatus(callSid: callSid, status: "completed", duration: 200, dialSid: Self.sid("CA", 801)), to: harness)
        #expect(try Document(done.body).hangsUp)
        #expect(try await harness.round("call_tw_" + callSid).status == "converted")
        await harness.shutdown()
    }

    @Test func unknownNumbersWithheldCallersAndTrackingNumbers() async throws {
        let harness = try await Self.harness(extraBuyers: [])
        let unknown = try Document(try await Self.send(Self.voice(callSid: Self.sid("CA", 9), to: "+18005550000"), to: harness).body)
        #expect(unknown.says?.contains("not in service") == true)
        #expect(unknown.hangsUp)

        // Withheld callers are auctioned, each on its own (no shared caller hash).
        for (n, from) in [(10, "anonymous"), (11, "+266696687")] {
            let twiml = try Document(try await Self.send(Self.voice(callSid: Self.sid("CA", n), from: from), to: harness).body)
            #expect(twiml.number == "+18005550101")
        }
        // A tracking number of the campaign reaches it too, paid to tracking.seller.
        let tracked = try Document(try await Self.send(Self.voice(callSid: Self.sid("CA", 12), to: "+18005550401"), to: harness).body)
        #expect(tracked.number == "+18005550101")
        #expect(try await harness.round("call_tw_" + Self.sid("CA", 12)).sellerID == "seller-one")
        await harness.shutdown()
    }

    @Test func withoutTelephonyConfigEveryWebhookIsRefused() async throws {
        let harness = try await Self.harness(withTelephony: false)
        #expect(try await Self.send(Self.voice(callSid: Self.sid("CA", 13)), to: harness).status == 403)
        await harness.shutdown()
    }
}
