import Foundation
import GavelConfig
import GavelCore
import GavelExchange
import Testing

/// The web pages over plain HTTP: sign-in, the session cookie's attributes, CSRF refusals, bad
/// keys, the portal's pause (stored, restored after a restart, `paused` in rounds).
@Suite(.serialized)
struct WebPagesTests {
    static let buyerKey = "buyer-key-acme-0001"
    static let operatorKey = "operator-key-ops-0001"

    /// An exchange with buyer `acme` (portal key), buyer `other`, operator `ops`; HTTP started.
    static func harness(acmeYAML: String = "") async throws -> TestExchange {
        let harness = try await TestExchange(buyers: [
            bidder("acme", bid: "12.00", yaml: "api_key: \(buyerKey)\n\(acmeYAML)"), bidder("other", bid: "8.00"),
        ])
        try "operators:\n  - {id: ops, api_key: \(operatorKey)}\n"
            .write(toFile: harness.configPath + "/operators.yaml", atomically: true, encoding: .utf8)
        harness.exchange.reload(try ConfigLoader.load(directory: harness.configPath))
        try await harness.startHTTP()
        return harness
    }

    /// Signs `client` in to `area` (`portal` or `ui`) with `key`; returns the answer to the sign-in post.
    static func signIn(_ client: WebClient, area: String, key: String) async throws -> WebClient.Answer {
        let form = try await client.get("/\(area)/")
        let csrf = try #require(WebClient.csrf(in: form.body))
        return try await client.post("/\(area)/signin", [("csrf", csrf), ("key", key)])
    }

    @Test func signingInSetsAStrictHttpOnlySessionCookie() async throws {
        let harness = try await Self.harness()
        let client = WebClient(port: harness.port)
        let form = try await client.get("/portal/")
        #expect(form.status == 200)
        #expect(form.body.contains("Sign in to the buyer portal"))
        #expect(form.headers["cache-control"] == "no-store")
        #expect(form.headers["content-security-policy"]?.contains("default-src 'self'") == true)

        let csrf = try #require(WebClient.csrf(in: form.body))
        let signedIn = try await client.post("/portal/signin", [("csrf", csrf), ("key", Self.buyerKey)])
        #expect(signedIn.status == 303)
        #expect(signedIn.location == "/portal/")
        let cookie = try #require(signedIn.setCookies.first { $0.hasPrefix("gavel_portal=") })
        let attributes = cookie.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        #expect(attributes.contains("httponly"))
        #expect(attributes.contains("samesite=strict"))
        #expect(attributes.contains("path=/portal/"))
        let id = String(cookie.split(separator: ";")[0].dropFirst("gavel_portal=".count))
        #expect(id.count == 64 && id.allSatisfy(\.isHexDigit))

        let page = try await client.get("/portal/")
        #expect(page.status == 200)
        #expect(page.body.contains("acme"))
        #expect(page.body.contains("Purchases"))
        // The buyer's cookie opens nothing on the operators' side.
        let dashboard = try await client.get("/ui/")
        #expect(dashboard.body.contains("Sign in to the dashboard"))

        // Signing out ends the session on the server, not only in the browser.
        let pageCSRF = try #require(WebClient.csrf(in: page.body))
        let out = try await client.post("/portal/signout", [("csrf", pageCSRF)])
        #expect(out.status == 303)
        let replay = WebClient(port: harness.port)
        replay.cookies["gavel_portal"] = id
        #expect(try await replay.get("/portal/").body.contains("Sign in to the buyer portal"))
        await harness.shutdown()
    }

    @Test func aRotatedKeyEndsTheSessionsSignedInWithIt() async throws {
        let harness = try await Self.harness()
        let client = WebClient(port: harness.port)
        #expect(try await Self.signIn(client, area: "portal", key: Self.buyerKey).status == 303)
        #expect(try await client.get("/portal/").body.contains("Purchases"))
        // The operator rotates the leaked key: the session made with the old one is over.
        let file = harness.configPath + "/buyers/acme.yaml"
        let yaml = try String(contentsOfFile: file, encoding: .utf8).replacingOccurrences(of: Self.buyerKey, with: "buyer-key-acme-0002")
        try yaml.write(toFile: file, atomically: true, encoding: .utf8)
        harness.exchange.reload(try ConfigLoader.load(directory: harness.configPath))
        let after = try await client.get("/portal/")
        #expect(after.body.contains("Sign in to the buyer portal"))
        #expect(!after.body.contains("Purchases"))
        await harness.shutdown()
    }

    @Test func badKeysGetTheFormAgainWithAReason() async throws {
        let harness = try await Self.harness()
        let client = WebClient(port: harness.port)
        for (area, key) in [("portal", "not-a-key-at-all"), ("portal", Self.operatorKey), ("ui", Self.buyerKey), ("ui", TestExchange.sellerKey), ("ui", "")] {
            let answer = try await Self.signIn(client, area: area, key: key)
            #expect(answer.status == 401, "\(area) \(key)")
            #expect(answer.body.contains("class=\"error\""), "\(area) \(key)")
            #expect(answer.body.contains("<form"), "\(area) \(key)")
            #expect(!answer.setCookies.contains { $0.hasPrefix("gavel_portal=") || $0.hasPrefix("gavel_ui=") })
        }
        #expect(try await Self.signIn(client, area: "ui", key: Self.operatorKey).status == 303)
        await harness.shutdown()
    }

    @Test func formsWithoutTheSessionsTokenAreRefused() async throws {
        let harness = try await Self.harness()
        let client = WebClient(port: harness.port)
        // The sign-in form itself: its token must match its cookie.
        _ = try await client.get("/portal/")
        let forged = try await client.post("/portal/signin", [("csrf", String(repeating: "a", count: 64)), ("key", Self.buyerKey)])
        #expect(forged.status == 403)
        #expect(try await Self.signIn(client, area: "portal", key: Self.buyerKey).status == 303)

        for path in ["/portal/pause", "/portal/resume", "/portal/returns", "/portal/signout"] {
            #expect(try await client.post(path, []).status == 403, "\(path) without a token")
            #expect(try await client.post(path, [("csrf", "0123")]).status == 403, "\(path) with a wrong token")
        }
        #expect(!harness.exchange.isPortalPaused("acme"))
        // Still signed in: the refused sign-out did nothing.
        #expect(try await client.get("/portal/").body.contains("Pause buying"))
        await harness.shutdown()
    }

    @Test func aPortalPauseExcludesTheBuyerAndOutlivesARestart() async throws {
        let harness = try await Self.harness()
        let client = WebClient(port: harness.port)
        #expect(try await Self.signIn(client, area: "portal", key: Self.buyerKey).status == 303)
        let page = try await client.get("/portal/")
        let csrf = try #require(WebClient.csrf(in: page.body))
        let paused = try await client.post("/portal/pause", [("csrf", csrf)])
        #expect(paused.status == 303)
        #expect(try await client.get("/portal/").body.contains("You paused buying here"))

        let during = try await harness.runLead()
        #expect(try await harness.round(during.auctionID).reason(of: "acme") == "paused")
        #expect(try await harness.round(during.auctionID).reason(of: "other") == "sold")

        // A restart: the pause is read back from the database.
        await harness.stopServer()
        try await harness.openServer()
        #expect(harness.exchange.isPortalPaused("acme"))
        let after = try await harness.runLead(TestExchange.lead(email: "second@example.com"))
        #expect(try await harness.round(after.auctionID).reason(of: "acme") == "paused")

        // Resumed from the portal (a new session: sessions live in memory and ended with the restart).
        try await harness.startHTTP()
        let again = WebClient(port: harness.port)
        #expect(try await Self.signIn(again, area: "portal", key: Self.buyerKey).status == 303)
        let resumePage = try await again.get("/portal/")
        #expect(resumePage.body.contains("Resume buying"))
        #expect(try await again.post("/portal/resume", [("csrf", try #require(WebClient.csrf(in: resumePage.body)))]).status == 303)
        let resumed = try await harness.runLead(TestExchange.lead(email: "third@example.com"))
        #expect(try await harness.round(resumed.auctionID).reason(of: "acme") == "sold")
        await harness.shutdown()
    }

    @Test func pausedInYAMLStaysPausedWhateverThePortalSays() async throws {
        let harness = try await Self.harness(acmeYAML: "paused: true")
        let client = WebClient(port: harness.port)
        #expect(try await Self.signIn(client, area: "portal", key: Self.buyerKey).status == 303)
        let page = try await client.get("/portal/")
        #expect(page.body.contains("paused in the exchange's config"))
        #expect(!page.body.contains("Pause buying"))
        let result = try await harness.runLead()
        #expect(try await harness.round(result.auctionID).reason(of: "acme") == "paused")
        await harness.shutdown()
    }

    @Test func theDashboardShowsRoundsAndOneRoundInFull() async throws {
        let harness = try await Self.harness()
        let sold = try await harness.runLead()
        let client = WebClient(port: harness.port)
        #expect(try await Self.signIn(client, area: "ui", key: Self.operatorKey).status == 303)
        let page = try await client.get("/ui/")
        #expect(page.status == 200)
        #expect(page.body.contains(sold.auctionID))
        #expect(page.body.contains("id=\"buyer-acme\""))
        #expect(page.body.contains("<svg class=\"chart\""))
        let live = try await client.get("/ui/live")
        #expect(live.status == 200)
        #expect(live.body.contains(sold.auctionID) && !live.body.contains("<html"))
        let round = try await client.get("/ui/rounds/\(sold.auctionID)")
        #expect(round.status == 200)
        #expect(round.body.contains("sold") && round.body.contains("outbid") && !round.body.contains("No post was made."))
        #expect(!round.body.contains("jo@example.com"))  // no contact data on the operator's view
        #expect(try await client.get("/ui/rounds/auc_nope").status == 404)
        // Without a session: the live panel says 401, so the page's script reloads into the sign-in form.
        #expect(try await WebClient(port: harness.port).get("/ui/live").status == 401)
        await harness.shutdown()
    }
}
