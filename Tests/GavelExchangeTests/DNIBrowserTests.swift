import Foundation
import GavelCore
import GavelExchange
import Hummingbird
import NIOCore
import Testing

/// Dynamic number insertion in a real browser: headless Chromium loads a landing page served by
/// this test, the page embeds Gavel's `/dni.js`, the number on the page is swapped, and a call
/// to that number is attributed to the visit.
@Suite(.serialized)
struct DNIBrowserTests {
    static let chromium: String? = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    static func landingPage(gavelPort: Int) -> String {
        """
        <!doctype html>
        <html><head><title>Fast Plumbing</title></head>
        <body>
          <h1>Burst pipe? Call now</h1>
          <p>Call <a class="gavel-phone" href="tel:+18005550000">(800) 555-0000</a> any time.</p>
          <p class="footer">Or <span class="gavel-phone">(800) 555-0000</span></p>
          <script src="http://127.0.0.1:\(gavelPort)/dni.js" data-campaign="calls"></script>
        </body></html>
        """
    }

    /// Runs Chromium headless on `url` and returns the DOM after scripts ran.
    static func dumpDOM(_ url: String, chromium: String) throws -> String {
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("gavel-chromium-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: profile) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: chromium)
        process.arguments = [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--user-data-dir=\(profile.path)", "--virtual-time-budget=10000", "--dump-dom", url,
        ]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }

    @Test func theNumberSwapsInChromiumAndTheCallIsAttributed() async throws {
        let chromium = try #require(Self.chromium, "install Debian's chromium package (scripts/setup.sh does)")
        let harness = try await TestExchange(buyers: [callBidder("buyer", bid: "30.00", destination: "+18005550101")])
        try await harness.startHTTP()

        // The landing page, served by this test on its own port.
        let html = Self.landingPage(gavelPort: harness.port)
        let router = Router()
        router.get("/landing") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"], body: ResponseBody(byteBuffer: ByteBuffer(string: html)))
        }
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let site = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                               onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) })
        let siteTask = Task { try await site.runService() }
        var sitePort = 0
        for await port in ports { sitePort = port; break }

        let dom = try Self.dumpDOM("http://127.0.0.1:\(sitePort)/landing?utm_source=google&utm_medium=cpc&utm_term=burst+pipe&gclid=g123", chromium: chromium)
        siteTask.cancel()
        #expect(dom.contains("Burst pipe?"), "Chromium did not render the page")
        // The first google pool number, in text and in the tel: link; the placeholder is gone.
        #expect(dom.contains("href=\"tel:+18005550201\""))
        #expect(dom.contains("(800) 555-0201"))
        #expect(!dom.contains("555-0000"))
        let sessionRange = try #require(dom.range(of: #"data-gavel-session="(dni_[0-9A-Z]+)""#, options: .regularExpression))
        let sessionID = String(dom[sessionRange].dropFirst("data-gavel-session=\"".count).dropLast())

        // The visitor calls the number on the page.
        let call = try await harness.http(.post, "/v1/calls", body: #"{"caller": {"number": "+14155550777", "state": "CA"}, "dialed": "+18005550201"}"#)
        #expect(call.status == 200)
        #expect(call.json["status"] == "routed")
        let callID = try #require(call.json["call_id"]?.stringValue)
        let record = try await harness.http(.get, "/v1/auctions/\(callID)")
        let attribution = try #require(record.json["attribution"])
        #expect(attribution["match"] == "session")
        #expect(attribution["session_id"]?.stringValue == sessionID)
        #expect(attribution["source"] == "google")
        #expect(attribution["medium"] == "cpc")
        #expect(attribution["keyword"] == "burst pipe")
        #expect(attribution["gclid"] == "g123")
        #expect(attribution["landing_url"]?.stringValue?.contains("/landing?utm_source=google") == true)
        await harness.shutdown()
    }
}
