import BuyerFleet
import Foundation
import Testing

@Suite("PII scanning")
struct PIIScannerTests {
    private func scan(_ json: String) -> String? {
        PIIScanner.firstViolation(in: Data(json.utf8))
    }

    @Test(arguments: [
        #"{"email": "a@b.example"}"#,
        #"{"lead": {"contact": {"First_Name": "Ann"}}}"#,
        #"{"items": [{"ok": 1}, {"ip_address": "10.0.0.1"}]}"#,
        #"{"caller": {"number": "+1 555"}}"#,
        #"{"notes": "+1 (555) 123-4567"}"#,
        #"{"tags": ["x", "5551234567"]}"#,
        #"{"caller": {"hash": "ok", "alt": "555-123-4567"}}"#,
    ])
    func flagsPersonalData(json: String) {
        #expect(scan(json) != nil)
    }

    @Test(arguments: [
        #"{"vertical": "auto", "zip": "90210", "state": "CA", "age": 41}"#,
        #"{"caller": {"hash": "5551234567890", "area_code": "555"}}"#,
        #"{"hash": ["5551234567", "5559876543"]}"#,
        #"{"phone_hash": "0123456789abcdef", "created": "2024-05-01"}"#,
        #"{"short": "555-1234", "mixed": "12345 67890 abc"}"#,
        "not json at all",
        "",
    ])
    func passesCleanPings(json: String) {
        #expect(scan(json) == nil)
    }

    @Test func namesWhereTheViolationIs() {
        #expect(scan(#"{"lead": {"email": "a@b.example"}}"#) == "$.lead.email: forbidden key")
        #expect(scan(#"{"caller": {"number": "x"}}"#) == "$.caller.number: caller number")
        #expect(scan(#"{"a": ["ok", "(555) 123-4567"]}"#) == "$.a[1]: phone number")
    }

    @Test func fleetCountsViolationsOnPingsOnly() async throws {
        try await withFleet(["a": instant()]) { fleet in
            _ = try await exchange(port: fleet.port, "POST", "/a/ping", body: cleanPing)
            #expect(fleet.stats(for: "a").piiViolations == 0)

            _ = try await exchange(port: fleet.port, "POST", "/a/ping", body: #"{"vertical": "auto", "email": "a@b.example"}"#)
            #expect(fleet.stats(for: "a").piiViolations == 1)

            // The winner's post carries the lead's contact details by design.
            _ = try await exchange(port: fleet.port, "POST", "/a/post", body: #"{"email": "a@b.example"}"#)
            #expect(fleet.stats(for: "a").piiViolations == 1)
            #expect(fleet.stats(for: "a").pings == 2)
        }
    }
}
