import Crypto
import Foundation
import GavelCore
import GavelPing

extension BuyerRequest {
    /// The request for the ping engine, signed when the buyer has a `signing_secret`.
    func transfer(timeoutMs: Int, signingSecret: String?, nowS: Int64, sendOnce: Bool = false) -> HTTPRequest {
        var headers = self.headers.map { (name: $0.name, value: $0.value) }
        if let signingSecret { headers.append((RequestSignature.header, RequestSignature.value(for: self, secret: signingSecret, timestamp: nowS))) }
        var request = HTTPRequest(url: url, method: method == .get ? .get : .post, headers: headers, body: body, timeoutMs: max(1, timeoutMs))
        request.sendOnce = sendOnce
        return request
    }
}

/// `Gavel-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>` (CONTRACT v2);
/// a request without a body (GET) signs `"<t>.<path?query>"`.
public enum RequestSignature {
    public static let header = "Gavel-Signature"

    public static func value(for request: BuyerRequest, secret: String, timestamp: Int64) -> String {
        let signed: [UInt8] = request.method == .get
            ? Array("\(timestamp).\(request.pathAndQuery)".utf8)
            : Array("\(timestamp).".utf8) + request.body
        return "t=\(timestamp),v1=" + hex(secret: secret, message: signed)
    }

    /// The hex HMAC-SHA256 of `message` under `secret`: what a buyer computes to verify.
    public static func hex(secret: String, message: [UInt8]) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: Array(secret.utf8)))
        return code.map { byte in
            let digits = Array("0123456789abcdef")
            return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]])
        }.joined()
    }
}
