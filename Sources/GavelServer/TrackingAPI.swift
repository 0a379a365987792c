import Foundation
import GavelCore
import GavelExchange
import Hummingbird
import NIOCore

/// Dynamic number insertion for landing pages: the `/dni.js` snippet, and the public endpoint it
/// calls for a session's tracking number. Public by design (browsers call it), so it takes only a
/// campaign id and visit facts, never anything that sells or reads data.
struct TrackingAPI: Sendable {
    let exchange: Exchange
    /// Per client address: a bot must not drain a campaign's pool of numbers.
    let limit: RateLimit
    let trustedProxies: Set<String>
    private let limiter = RateLimiter()

    init(exchange: Exchange, limit: RateLimit, trustedProxies: Set<String>) {
        self.exchange = exchange
        self.limit = limit
        self.trustedProxies = trustedProxies
    }

    func register(on router: Router<GavelRequestContext>) {
        router.get("/dni.js") { _, _ in
            Response(
                status: .ok,
                headers: [.contentType: "application/javascript; charset=utf-8", .cacheControl: "public, max-age=300"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: DNISnippet.source))
            )
        }
        router.post("/v1/dni/sessions") { request, context in
            let client = context.clientAddress(of: request, trustedProxies: self.trustedProxies)
            if let wait = self.limiter.take(client, limit: self.limit) {
                let seconds = max(1, Int(wait.rounded(.up)))
                var response = JSONResponses.error(RequestError(
                    status: 429, code: "rate_limited", message: "too many tracking-number requests from \(client); retry in \(seconds) s",
                    retryAfterS: seconds))
                TrackingAPI.allowCrossOrigin(&response)
                return response
            }
            return await self.session(request)
        }
        router.on("/v1/dni/sessions", method: .options) { _, _ in
            var response = Response(status: .noContent)
            TrackingAPI.allowCrossOrigin(&response)
            response.headers[.accessControlAllowMethods] = "POST, OPTIONS"
            response.headers[.accessControlAllowHeaders] = "Content-Type"
            return response
        }
    }

    func session(_ request: Request) async -> Response {
        var response: Response
        do throws(RequestError) {
            var request = request
            let buffer: ByteBuffer
            do { buffer = try await request.collectBody(upTo: 16 * 1024) } catch {
                throw RequestError(status: 413, code: "body_too_large", message: "DNI requests are limited to 16 KiB")
            }
            let object = try LeadSubmission.jsonObject(Array(buffer.readableBytesView))
            guard let campaignID = object["campaign"]?.stringValue else { throw RequestError.missing("campaign") }
            guard let campaign = exchange.config.campaigns[campaignID], let tracking = campaign.tracking else {
                throw RequestError.invalid("campaign", "no campaign \(campaignID) with tracking numbers", code: "unknown_campaign")
            }
            func text(_ key: String, limit: Int = 512) -> String? {
                guard let value = object[key]?.stringValue, !value.isEmpty else { return nil }
                return String(value.prefix(limit))
            }
            let source = (text("source", limit: 64) ?? "direct").lowercased()
            let visit = TrackingDesk.Visit(
                source: source, medium: text("medium", limit: 64), keyword: text("keyword", limit: 128), gclid: text("gclid", limit: 256),
                referrer: text("referrer"), landingURL: text("landing_url")
            )
            let session = await exchange.assignTrackingNumber(campaign: campaign, tracking: tracking, visit: visit)
            response = JSONResponses.ok([
                "session_id": .string(session.id),
                "number": .string(session.number),
                "display": .string(TrackingAPI.display(session.number)),
                "selector": .string(tracking.selector),
                "expires_at": .string(Timestamps.rfc3339(ms: Int64(session.expiresAt.timeIntervalSince1970 * 1000))),
            ])
        } catch {
            response = JSONResponses.error(error)
        }
        TrackingAPI.allowCrossOrigin(&response)
        return response
    }

    static func allowCrossOrigin(_ response: inout Response) {
        response.headers[.accessControlAllowOrigin] = "*"
    }

    /// `+18005550201` -> `(800) 555-0201`; other numbers as they are.
    static func display(_ e164: String) -> String {
        guard e164.hasPrefix("+1"), e164.count == 12 else { return e164 }
        let digits = Array(e164.dropFirst(2))
        return "(\(String(digits[0..<3]))) \(String(digits[3..<6]))-\(String(digits[6..<10]))"
    }
}

/// The landing-page snippet. Embed with
/// `<script src="https://gavel.example/dni.js" data-campaign="home-services" async></script>`;
/// optional `data-selector` overrides the campaign's selector.
enum DNISnippet {
    static let source = #"""
    (function () {
      "use strict";
      var script = document.currentScript;
      if (!script) { return; }
      var base = new URL(script.src, location.href).origin;
      var campaign = script.getAttribute("data-campaign");
      if (!campaign) { return; }
      var params = new URLSearchParams(location.search);
      var referrer = document.referrer || "";

      function sourceFromReferrer(url) {
        try {
          var host = new URL(url).hostname;
          if (/(^|\.)google\./.test(host)) { return "google"; }
          if (/(^|\.)bing\./.test(host)) { return "bing"; }
          if (/(^|\.)(facebook|fb)\./.test(host)) { return "facebook"; }
          return host;
        } catch (e) { return ""; }
      }

      var source = params.get("utm_source") || (params.get("gclid") ? "google" : "") ||
        (params.get("fbclid") ? "facebook" : "") || sourceFromReferrer(referrer) || "direct";
      var visit = {
        campaign: campaign, source: source.toLowerCase(), medium: params.get("utm_medium") || "",
        keyword: params.get("utm_term") || params.get("keyword") || "", gclid: params.get("gclid") || "",
        referrer: referrer, landing_url: location.href
      };

      function swap(session) {
        var selector = script.getAttribute("data-selector") || session.selector;
        var nodes = document.querySelectorAll(selector);
        for (var i = 0; i < nodes.length; i++) {
          var node = nodes[i];
          if (node.tagName === "A" && /^tel:/i.test(node.getAttribute("href") || "")) {
            node.setAttribute("href", "tel:" + session.number);
          }
          var links = node.querySelectorAll('a[href^="tel:"]');
          for (var j = 0; j < links.length; j++) { links[j].setAttribute("href", "tel:" + session.number); }
          if (links.length === 0) { node.textContent = session.display; }
          else { for (var k = 0; k < links.length; k++) { links[k].textContent = session.display; } }
          node.setAttribute("data-gavel-session", session.session_id);
        }
      }

      var key = "gavel_dni_" + campaign;
      var stored = null;
      try { stored = JSON.parse(window.sessionStorage.getItem(key)); } catch (e) { stored = null; }
      if (stored && stored.source === visit.source && Date.parse(stored.expires_at) > Date.now()) {
        swap(stored);
        return;
      }
      // text/plain keeps this a simple request: no CORS preflight before the number shows.
      fetch(base + "/v1/dni/sessions", {
        method: "POST", headers: { "Content-Type": "text/plain" }, body: JSON.stringify(visit)
      }).then(function (response) { return response.ok ? response.json() : null; })
        .then(function (session) {
          if (!session) { return; }
          session.source = visit.source;
          try { window.sessionStorage.setItem(key, JSON.stringify(session)); } catch (e) {}
          if (document.readyState === "loading") {
            document.addEventListener("DOMContentLoaded", function () { swap(session); });
          } else {
            swap(session);
          }
        })
        .catch(function () {});
    })();
    """#
}
