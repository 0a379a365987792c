import GavelCore
@testable import GavelIntegration
import Testing

struct ValueTemplateTests {
    let campaign = Campaign(id: "solar", vertical: "solar", tmaxMs: 800, floor: .zero, payout: .share(basisPoints: 7000))

    func pingInput(lead: JSONObject, consent: JSONObject? = nil) -> PingInput {
        PingInput(auctionID: "auc_1", campaign: campaign, lead: lead, consent: consent, source: "pub-7", tmaxMs: 250, nowMs: 1_764_500_000_000)
    }

    func render(_ text: String, lead: JSONObject = JSONObject(), maps: [String: [String: String]] = [:]) throws -> JSONValue? {
        try ValueTemplate.parse(text, maps: maps).render(RenderScope(ping: pingInput(lead: lead)))
    }

    @Test func lonesReferenceKeepsItsTypeAndMixedTextIsText() throws {
        let lead = JSONObject(["zip": .string("90210"), "bill": .number("180"), "own": .bool(true)])
        #expect(try render("{{lead.bill}}", lead: lead) == .number("180"))
        #expect(try render("{{lead.own}}", lead: lead) == .bool(true))
        #expect(try render("zip={{lead.zip}};bill={{lead.bill}}", lead: lead) == .string("zip=90210;bill=180"))
        #expect(try render("{{lead.missing}}", lead: lead) == nil)
        #expect(try render("a{{lead.missing}}b", lead: lead) == .string("ab"))
        #expect(try render("{{round.auction_id}}/{{round.tmax_ms}}/{{round.source}}") == .string("auc_1/250/pub-7"))
    }

    @Test func transforms() throws {
        let lead = JSONObject([
            "phone_type": .string("Mobile"), "state": .string("ca"), "owner": .string("yes"), "moved": .string("2024-03-09"),
            "when": .string("2024-03-09T23:30:00-02:00"), "amount": .string("12.345"), "tel": .string("+1 (555) 010-0100"),
        ])
        let maps = ["yesno": ["yes": "1", "no": "0"]]
        #expect(try render("{{lead.state | upper}}", lead: lead) == .string("CA"))
        #expect(try render("{{lead.phone_type|lower}}", lead: lead) == .string("mobile"))
        #expect(try render("{{lead.owner | map:yesno}}", lead: lead, maps: maps) == .string("1"))
        #expect(try render("{{lead.state | map:yesno}}", lead: lead, maps: maps) == .string("ca"))
        #expect(try render("{{lead.absent | default:No}}", lead: lead) == .string("No"))
        #expect(try render("{{lead.moved | date:MM/DD/YYYY}}", lead: lead) == .string("03/09/2024"))
        #expect(try render("{{lead.when | date:YYYY-MM-DD HH:mm}}", lead: lead) == .string("2024-03-10 01:30"))
        #expect(try render("{{lead.moved | date:unix}}", lead: lead) == .string("1709942400"))
        #expect(try render("{{lead.amount | number}}", lead: lead) == .number("12.345"))
        #expect(try render("{{lead.amount | int}}", lead: lead) == .number("12"))
        #expect(try render("{{lead.amount | cents}}", lead: lead) == .number("1234"))
        #expect(try render("{{lead.tel | digits}}", lead: lead) == .string("15550100100"))
        #expect(try render("{{lead.tel | phone10}}", lead: lead) == .string("5550100100"))
        #expect(try render("{{lead.tel | phone10 | e164}}", lead: lead) == .string("+15550100100"))
        #expect(try render("{{lead.owner | bool}}", lead: lead) == .bool(true))
        #expect(try render("{{lead.phone_type | truncate:3}}", lead: lead) == .string("Mob"))
        #expect(try render("{{round.now | date:YYYY}}") == .string("2025"))
        // Hostile dates are no date (the field is left out), never an overflow.
        for hostile in ["2024-01-01T9000000000000000000:00+0000", "2024-01-9000000000000000000T00:00+0000", "2024-13-01", "99999999999"] {
            let hostileLead = JSONObject(["d": .string(hostile)])
            #expect(try render("{{lead.d | date:unix}}", lead: hostileLead) == nil, "\(hostile)")
        }
    }

    @Test func parseErrorsNameWhatIsWrong() {
        #expect(throws: TemplateProblem.self) { try ValueTemplate.parse("{{lead.zip") }
        #expect(throws: TemplateProblem.self) { try ValueTemplate.parse("{{visitor.ip}}") }
        #expect(throws: TemplateProblem.self) { try ValueTemplate.parse("{{lead.zip | shout}}") }
        #expect(throws: TemplateProblem.self) { try ValueTemplate.parse("{{lead.zip | map:nope}}") }
        #expect(throws: TemplateProblem.self) { try ValueTemplate.parse("{{lead.zip | date:nonsense}}") }
    }

    @Test func piiNeverFitsAPing() throws {
        func pingProblem(_ text: String) throws -> String? {
            try ValueTemplate.parse(text).problem(in: .ping, keptNames: [])
        }
        #expect(try pingProblem("{{contact.email}}")?.contains("personal data") == true)
        #expect(try pingProblem("{{lead.email}}")?.contains("personal data") == true)
        #expect(try pingProblem("{{caller.number}}") != nil)
        #expect(try pingProblem("{{consent.signer_email}}") != nil)
        #expect(try pingProblem("{{round.price}}")?.contains("posts only") == true)
        #expect(try pingProblem("{{ping.lead_id}}") != nil)
        #expect(try pingProblem("{{consent.trustedform_cert_url}}") == nil)
        #expect(try pingProblem("{{caller.area_code}}-{{lead.zip}}") == nil)
        #expect(try ValueTemplate.parse("{{contact.email}}").problem(in: .post, keptNames: []) == nil)
        #expect(try ValueTemplate.parse("{{ping.lead_id}}").problem(in: .post, keptNames: ["lead_id"]) == nil)
        #expect(try ValueTemplate.parse("{{ping.other}}").problem(in: .post, keptNames: ["lead_id"]) != nil)
    }

    @Test func consentInAPingIsOnlyTheSafeKeys() throws {
        let consent = JSONObject(["trustedform_cert_url": .string("https://cert/1"), "signer_email": .string("a@b.c")])
        let scope = RenderScope(ping: pingInput(lead: JSONObject(), consent: consent))
        #expect(try ValueTemplate.parse("{{consent}}").render(scope) == .object(JSONObject(["trustedform_cert_url": .string("https://cert/1")])))
    }
}

struct RequestTemplateTests {
    let campaign = Campaign(id: "solar", vertical: "solar", tmaxMs: 800, floor: .zero, payout: .share(basisPoints: 7000))

    func value(_ text: String) throws -> RequestTemplate.BodyNode { .value(try ValueTemplate.parse(text)) }

    func input() -> PingInput {
        PingInput(auctionID: "auc_1", campaign: campaign, lead: JSONObject(["zip": .string("90210"), "note": .string("a&b <c> \"d\"")]),
                  tmaxMs: 250)
    }

    @Test func formBodyAndQueryAreURLEncoded() throws {
        let template = RequestTemplate(
            url: "http://buyer.test/ping?src=gavel", query: [.init("key", try .parse("k 1&2"))], headers: [.init("X-Id", try .parse("{{round.auction_id}}\r\nEvil: 1"))],
            format: .form, body: .fields([("Zip", try value("{{lead.zip}}")), ("Note", try value("{{lead.note}}")), ("Gone", try value("{{lead.none}}"))]))
        #expect(template.problems(for: .ping).isEmpty)
        let request = template.render(RenderScope(ping: input())) { "" }
        #expect(request.url == "http://buyer.test/ping?src=gavel&key=k+1%262")
        #expect(String(decoding: request.body, as: UTF8.self) == "Zip=90210&Note=a%26b+%3Cc%3E+%22d%22")
        #expect(request.headers.contains(.init("Content-Type", "application/x-www-form-urlencoded")))
        #expect(request.headers.contains(.init("X-Id", "auc_1Evil: 1")))
    }

    @Test func xmlBodyEscapesValuesAndWritesAttributes() throws {
        let template = RequestTemplate(
            url: "http://b.test", format: .xml, body: .fields([
                ("@version", try value("2")), ("Zip", try value("{{lead.zip}}")),
                ("Data", .fields([("Note", try value("{{lead.note}}"))])),
            ]), xmlRoot: "Request")
        #expect(template.problems(for: .ping).isEmpty)
        let text = String(decoding: template.render(RenderScope(ping: input())) { "" }.body, as: UTF8.self)
        #expect(text == "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Request version=\"2\"><Zip>90210</Zip><Data><Note>a&amp;b &lt;c&gt; &quot;d&quot;</Note></Data></Request>")
        // What we write, our reader reads back.
        let read = try XMLReader.parse(Array(text.utf8))
        #expect(read["Request"]?["Data"]?["Note"] == .string("a&b <c> \"d\""))
    }

    @Test func jsonBodyNestsAndKeepsTypes() throws {
        let template = RequestTemplate(
            url: "http://b.test", format: .json, body: .fields([
                ("lead", try value("{{lead}}")), ("meta", .fields([("tmax", try value("{{round.tmax_ms}}")), ("v", .value(.constant(.number("2"))))])),
            ]))
        let body = String(decoding: template.render(RenderScope(ping: input())) { "" }.body, as: UTF8.self)
        #expect(body == #"{"lead":{"zip":"90210","note":"a&b <c> \"d\""},"meta":{"tmax":250,"v":2}}"#)
    }

    @Test func structuralMistakesAreProblems() throws {
        let get = RequestTemplate(method: .get, url: "http://b.test", format: .json, body: .fields([]))
        #expect(get.problems(for: .ping).map(\.path) == ["body.format"])
        let nestedForm = RequestTemplate(url: "http://b.test", format: .form, body: .fields([("a", .fields([("b", try value("x"))]))]))
        #expect(nestedForm.problems(for: .ping).map(\.path) == ["body.fields.a"])
        let leak = RequestTemplate(url: "http://b.test", format: .form, body: .fields([("Email", try value("{{contact.email}}"))]))
        #expect(leak.problems(for: .ping).map(\.path) == ["body.fields.Email"])
        let wholeInForm = RequestTemplate(url: "http://b.test", format: .form, body: .fields([("Lead", try value("{{lead}}"))]))
        #expect(wholeInForm.problems(for: .ping).map(\.path) == ["body.fields.Lead"])
    }
}

struct AnswerTemplateTests {
    func bid(_ template: PingAnswerTemplate, _ body: String, status: Int = 200, maxBid: Money = Money(10_000)) -> BidAnswer {
        template.interpret(status: status, body: Array(body.utf8), maxBid: maxBid, reasons: ReasonCategories(["Duplicate": "duplicate"]))
    }

    func path(_ text: String) throws -> AnswerLocator { .path(try AnswerPath(text)) }

    @Test func jsonPathsWithIndexes() throws {
        let template = PingAnswerTemplate(bid: try path("result.offers[1].amount"), bidID: try path("result.id"))
        let answer = bid(template, #"{"result": {"id": "b-9", "offers": [{"amount": 3}, {"amount": "12.50"}]}}"#)
        #expect(answer.answer == .bid(price: Money(decimal: "12.5")!, bidID: "b-9", expiresInS: nil, destination: nil, minDurationS: nil))
    }

    @Test func theHighestOfSeveralBidsWinsWithItsOwnValues() throws {
        let template = PingAnswerTemplate(
            format: .xml, bid: try path("response.bids.bid[*].price"), bidID: try path("response.bids.bid[*].@id"),
            keep: [("lead_id", try path("response.lead_id"))])
        let xml = """
            <?xml version="1.0"?><response><status>Matched</status><lead_id>L-77</lead_id>
            <bids><bid id="a"><price>10.00</price></bid><bid id="b"><price>14.25</price></bid><bid id="c"><price>9</price></bid></bids></response>
            """
        let answer = bid(template, xml)
        #expect(answer.answer == .bid(price: Money(decimal: "14.25")!, bidID: "b", expiresInS: nil, destination: nil, minDurationS: nil))
        #expect(answer.kept == ["lead_id": "L-77"])
        // One <bid> is a list of one.
        let single = bid(template, "<response><bids><bid id=\"z\"><price>4</price></bid></bids></response>")
        #expect(single.answer == .bid(price: Money(4), bidID: "z", expiresInS: nil, destination: nil, minDurationS: nil))
    }

    @Test func rulesDecideBidsAndNoBids() throws {
        let template = PingAnswerTemplate(
            bid: try path("price"), reason: try path("reason"),
            bidWhen: .equals(try path("outcome"), "success"),
            errorWhen: .equals(try path("outcome"), "error"))
        #expect(bid(template, #"{"outcome": "Success", "price": 7}"#).answer == .bid(price: Money(7), bidID: nil, expiresInS: nil, destination: nil, minDurationS: nil))
        let declined = bid(template, #"{"outcome": "failure", "price": 7, "reason": "Duplicate"}"#)
        #expect(declined.answer == .noBid)
        #expect(declined.buyerReason == BuyerReason(code: "Duplicate", category: "duplicate"))
        if case .failed(let reason, _) = bid(template, #"{"outcome": "error", "reason": "down"}"#).answer {
            #expect(reason == .badResponse)
        } else {
            Issue.record("an error outcome must be bad_response")
        }
    }

    @Test func untrustedNumbersStayBounded() throws {
        let template = PingAnswerTemplate(bid: try path("bidAmount"), expiresInS: try path("expireInSeconds"))
        func isBad(_ body: String) -> Bool {
            if case .failed(.badResponse, _) = bid(template, body, maxBid: Money(100)).answer { return true }
            return false
        }
        #expect(isBad(#"{"bidAmount": 101}"#))
        #expect(isBad(#"{"bidAmount": "-5"}"#))
        #expect(isBad(#"{"bidAmount": "lots"}"#))
        #expect(isBad(#"{"bidAmount": 5, "expireInSeconds": 99999999}"#))
        #expect(isBad(#"{"bidAmount": 5, "expireInSeconds": 1.5}"#))
        #expect(isBad("not json"))
        #expect(bid(template, #"{"bidAmount": 0}"#).answer == .noBid)
        #expect(bid(template, "", status: 200).answer == .noBid)
        #expect(bid(template, "x", status: 204).answer == .noBid)
        if case .failed(.httpError, _) = bid(template, "{}", status: 500).answer {} else { Issue.record("500 is http_error") }
    }

    @Test func plainTextAnswersUseRegularExpressions() throws {
        let template = PingAnswerTemplate(format: .text, bid: .pattern(try TextPattern("price=([0-9.]+)")),
                                          bidWhen: .exists(.pattern(try TextPattern("^ACCEPT")), true))
        #expect(bid(template, "ACCEPT price=8.75 id=1").answer == .bid(price: Money(decimal: "8.75")!, bidID: nil, expiresInS: nil, destination: nil, minDurationS: nil))
        #expect(bid(template, "REJECT price=8.75").answer == .noBid)
    }

    @Test func postRulesWithAllAnyAndNumbers() throws {
        let rule = AnswerRule.any([
            .oneOf(try path("status"), ["Accepted", "Matched"]),
            .all([.exists(try path("lead_id"), true), .greater(try path("price"), 0, orEqual: false)]),
        ])
        let template = PostAnswerTemplate(accepted: rule, reference: try path("lead_id"), reason: try path("message"),
                                          errorWhen: .equals(try path("status"), "error"))
        let reasons = ReasonCategories()
        func post(_ body: String) -> AuctionRound.PostResult { template.interpret(status: 200, body: Array(body.utf8), reasons: reasons).result }
        #expect(post(#"{"status": "matched", "lead_id": "r1"}"#) == .accepted(reference: "r1"))
        #expect(post(#"{"lead_id": "r2", "price": "3.5"}"#) == .accepted(reference: "r2"))
        #expect(post(#"{"lead_id": "r3", "price": 0, "message": "no"}"#) == .rejected(reason: "no"))
        if case .failed = post(#"{"status": "error"}"#) {} else { Issue.record("error is a failed post") }
    }

    @Test func hostileXMLIsRefusedNotExpanded() {
        let doctype = "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x \"y\">]><r>&x;</r>"
        #expect(throws: XMLReader.Failure.self) { try XMLReader.parse(Array(doctype.utf8)) }
        #expect(throws: XMLReader.Failure.self) { try XMLReader.parse(Array("<r>&x;</r>".utf8)) }
        let deep = String(repeating: "<a>", count: 5_000) + String(repeating: "</a>", count: 5_000)
        #expect(throws: XMLReader.Failure.self) { try XMLReader.parse(Array(deep.utf8)) }
        #expect(throws: XMLReader.Failure.self) { try XMLReader.parse(Array("<a><b></a></b>".utf8)) }
        #expect(throws: XMLReader.Failure.self) { try XMLReader.parse(Array("<a>".utf8)) }
        #expect((try? XMLReader.parse(Array("<s:Envelope xmlns:s=\"u\"><s:Body a='1'>t &#x41;&#66;<![CDATA[<x>]]></s:Body></s:Envelope>".utf8)))
            == .object(JSONObject(["Envelope": .object(JSONObject(["Body": .object(JSONObject(["@a": .string("1"), "#text": .string("t AB<x>")]))]))])))
    }

    @Test func pathSyntaxErrors() {
        #expect(throws: TemplateProblem.self) { try AnswerPath("a..b") }
        #expect(throws: TemplateProblem.self) { try AnswerPath("a[x]") }
        #expect(throws: TemplateProblem.self) { try AnswerPath("a[*].b[*]") }
        #expect(throws: TemplateProblem.self) { try TextPattern("(") }
    }
}
