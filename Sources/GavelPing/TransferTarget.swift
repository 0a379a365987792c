import CCurl
import Foundation

/// The host and port a URL points at, read by libcurl's own URL parser, so a `CURLOPT_RESOLVE` pin
/// names the host exactly as libcurl will look it up.
struct TransferTarget: Sendable, Hashable {
    /// The host name to resolve and pin, lower-case; nil when the URL names an address literal,
    /// which libcurl uses without a lookup.
    let hostName: String?
    /// The URL's port, or the scheme's default.
    let port: Int

    /// Nil when libcurl cannot parse `url`; libcurl then rejects the transfer itself.
    init?(url: String) {
        guard let handle = curl_url() else { return nil }
        defer { curl_url_cleanup(handle) }
        guard curl_url_set(handle, CURLUPART_URL, url, 0) == CURLUE_OK,
              // Punycode, as libcurl converts an international name before it looks it up.
              let host = Self.part(handle, CURLUPART_HOST, flags: UInt32(CURLU_PUNYCODE)),
              let portText = Self.part(handle, CURLUPART_PORT, flags: UInt32(CURLU_DEFAULT_PORT)),
              let port = Int(portText)
        else { return nil }
        // The parser gives IPv6 literals in brackets and IPv4 ones normalised ("127.1" -> "127.0.0.1").
        let isLiteral = host.hasPrefix("[") || HostResolver.isAddress(host)
        self.hostName = isLiteral ? nil : host.lowercased()
        self.port = port
    }

    /// The `CURLOPT_RESOLVE` entry that pins the host to `addresses`: `host:port:addr[,addr]`.
    func pin(_ addresses: [String]) -> String? {
        guard let hostName, !addresses.isEmpty else { return nil }
        let list = addresses.map { $0.contains(":") ? "[\($0)]" : $0 }.joined(separator: ",")
        return "\(hostName):\(port):\(list)"
    }

    private static func part(_ handle: OpaquePointer, _ part: CURLUPart, flags: UInt32) -> String? {
        var text: UnsafeMutablePointer<CChar>?
        guard curl_url_get(handle, part, &text, flags) == CURLUE_OK, let text else { return nil }
        defer { curl_free(text) }
        return String(cString: text)
    }
}
