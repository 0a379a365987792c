import Crypto
import Foundation
import GavelCore
import GavelPing

/// A phone call as Twilio places it: the signed voice webhook (the caller waits for its TwiML),
/// then the signed `<Dial action>` callback reporting a completed 120 s call, which ends the call and
/// frees the buyer's slot. The latency recorded covers both webhooks, so it bounds the TwiML's.
struct CallWorkload: Workload {
    /// What `make-config` writes into `telephony.yaml` and the call campaign.
    static let accountSid = "AC" + String(repeating: "0", count: 31) + "1"
    static let authToken = "loadtest-twilio-auth-token-0001"
    static let inboundNumber = "+18005550700"

    var exchangeURL: String
    var clientTimeoutMs: Int
    var runTag: String
    var engine: CurlMultiEngine

    func perform(_ index: Int) async -> Outcome {
        // Unique per call, not per index: indexes start again each step, and a repeated CallSid is a
        // retried webhook that the exchange answers from its record instead of auctioning.
        let callSid = "CA" + Self.hex32("\(runTag)-\(index)-\(UUID().uuidString)")
        let voice: [(String, String)] = [
            ("AccountSid", Self.accountSid), ("CallSid", callSid), ("CallStatus", "ringing"), ("Direction", "inbound"),
            ("From", "+1415555\(String(format: "%04d", index % 10_000))"), ("FromState", "CA"), ("FromZip", "94107"),
            ("To", Self.inboundNumber),
        ]
        let routed: Bool
        switch await send("/telephony/twilio/voice", voice) {
        case .failure(let label): return .failed(label)
        case .success(let twiml):
            guard twiml.contains("<Response>") else { return .failed("bad_twiml") }
            routed = twiml.contains("/telephony/twilio/dial-status")
        }
        if routed {
            let status: [(String, String)] = [
                ("AccountSid", Self.accountSid), ("CallSid", callSid), ("CallStatus", "in-progress"), ("DialCallSid", "CA" + Self.hex32("d\(callSid)")),
                ("DialCallStatus", "completed"), ("DialCallDuration", "120"), ("To", Self.inboundNumber),
            ]
            if case .failure(let label) = await send("/telephony/twilio/dial-status", status) { return .failed("dial_" + label) }
        }
        return Outcome(status: routed ? .sold : .unsold, auctionID: "call_tw_" + callSid)
    }

    private enum Sent { case success(String), failure(String) }

    private func send(_ path: String, _ parameters: [(String, String)]) async -> Sent {
        let url = exchangeURL + path
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let body = parameters.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? $0.1)" }.joined(separator: "&")
        let request = HTTPRequest(
            url: url, method: .post,
            headers: [("Content-Type", "application/x-www-form-urlencoded"), ("X-Twilio-Signature", Self.signature(url: url, parameters: parameters))],
            body: Array(body.utf8), timeoutMs: clientTimeoutMs)
        switch await engine.send(request) {
        case .failure(let error): return .failure(error.shortDescription)
        case .success(let response):
            guard response.status == 200 else { return .failure("http_\(response.status)") }
            return .success(String(decoding: response.body, as: UTF8.self))
        }
    }

    static func signature(url: String, parameters: [(String, String)]) -> String {
        let text = url + parameters.sorted { $0.0 < $1.0 }.map { $0.0 + $0.1 }.joined()
        let code = HMAC<Insecure.SHA1>.authenticationCode(for: Array(text.utf8), using: SymmetricKey(data: Array(authToken.utf8)))
        return Data(code).base64EncodedString()
    }

    static func hex32(_ seed: String) -> String {
        SHA256.hash(data: Array(seed.utf8)).prefix(16).map { String(format: "%02x", $0) }.joined()
    }
}

/// Leads and calls interleaved evenly at the mix's shares (request `index` is a call when the
/// running count of calls steps up), so every step carries the same mix.
struct MixedWorkload: Workload {
    var leads: LeadWorkload
    var calls: CallWorkload
    var callShare: Double

    func perform(_ index: Int) async -> Outcome {
        let isCall = Int((Double(index + 1) * callShare).rounded(.down)) > Int((Double(index) * callShare).rounded(.down))
        return isCall ? await calls.perform(index) : await leads.perform(index)
    }

    var shedProbe: ShedProbe? { leads.shedProbe }
}
