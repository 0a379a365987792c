import Testing
@testable import GavelCore

struct MoneyTests {
    @Test func parsesDecimalText() {
        #expect(Money(decimal: "18.5")?.units == 185_000)
        #expect(Money(decimal: "0.0025")?.units == 25)
        #expect(Money(decimal: "120")?.units == 1_200_000)
        #expect(Money(decimal: "0")?.units == 0)
        #expect(Money(decimal: "0.0001")?.units == 1)
        #expect(Money(decimal: "12.50")?.units == 125_000)
        #expect(Money(decimal: "007.5")?.units == 75_000)
        #expect(Money(decimal: "1.2345")?.units == 12_345)
    }

    @Test func parsesFromSubstring() {
        let text = "bid=42.75;"
        let slice = text.dropFirst(4).dropLast()
        #expect(Money(decimal: slice) == Money(units: 427_500))
    }

    @Test(arguments: ["1.23456", "1e3", "1E3", "-1", "", ".5", "5.", "1.2.3", " 1", "1 ", "+1", "1,5", "abc", "-", ".", "0x10", "١٢"])
    func rejectsInvalidText(_ text: String) {
        #expect(Money(decimal: text) == nil)
    }

    @Test func negativeOnlyWhenAllowed() {
        #expect(Money(decimal: "-1") == nil)
        #expect(Money(decimal: "-1", allowNegative: true)?.units == -10_000)
        #expect(Money(decimal: "-0.25", allowNegative: true)?.units == -2_500)
        #expect(Money(decimal: "-", allowNegative: true) == nil)
        #expect(Money(decimal: "--1", allowNegative: true) == nil)
        #expect(Money(decimal: "-.5", allowNegative: true) == nil)
        #expect(Money(decimal: "1-", allowNegative: true) == nil)
    }

    @Test func hugeValues() {
        // 14 whole digits are accepted.
        #expect(Money(decimal: "99999999999999")?.units == 999_999_999_999_990_000)
        #expect(Money(decimal: "99999999999999.9999")?.units == 999_999_999_999_999_999)
        // 16 whole digits are rejected.
        #expect(Money(decimal: "1000000000000000") == nil)
        #expect(Money(decimal: "9999999999999999999999999") == nil)
        #expect(Money(decimal: "-9999999999999999999999999", allowNegative: true) == nil)
    }

    /// Regression: a 15-digit whole part used to pass the length guard and then overflow Int64 in
    /// `whole * Money.scale`, trapping the process. Buyer bids and lead fields under a min/max rule
    /// reach this parser, so remote input could crash the exchange. The exit test runs the parse in a
    /// child process: it must not crash, and must return nil.
    @Test func fifteenDigitWholePartDoesNotCrash() async {
        // 999,999,999,999,999 * 10,000 does not fit in Int64: the only correct answer is nil.
        await #expect(processExitsWith: .success) {
            if Money(decimal: "999999999999999") != nil { fatalError("accepted an amount that does not fit") }
            if Money(decimal: "-999999999999999", allowNegative: true) != nil { fatalError("accepted an amount that does not fit") }
        }
    }

    @Test func descriptionTrimsTrailingZeros() {
        #expect(Money(units: 185_000).description == "18.5")
        #expect(Money(units: 25).description == "0.0025")
        #expect(Money(units: 1_200_000).description == "120")
        #expect(Money(units: 0).description == "0")
        #expect(Money(units: 1).description == "0.0001")
        #expect(Money(units: 10_100).description == "1.01")
        #expect(Money(units: -2_500).description == "-0.25")
        #expect(Money(units: -10_000).description == "-1")
        #expect(Money(3).description == "3")
        #expect("\(Money(units: 123_456_789))" == "12345.6789")
    }

    @Test(arguments: ["18.5", "0.0025", "120", "0", "0.0001", "1.01", "12345.6789", "99999999999999.9999", "0.1"])
    func descriptionRoundTrips(_ text: String) throws {
        let money = try #require(Money(decimal: text))
        #expect(money.description == text)
        #expect(Money(decimal: money.description) == money)
    }

    @Test func negativeDescriptionRoundTrips() throws {
        let money = try #require(Money(decimal: "-7.05", allowNegative: true))
        #expect(money.description == "-7.05")
        #expect(Money(decimal: money.description, allowNegative: true) == money)
    }

    @Test func nonCanonicalTextNormalises() {
        #expect(Money(decimal: "12.5000")?.description == "12.5")
        #expect(Money(decimal: "0012")?.description == "12")
    }

    @Test func arithmeticAndOrdering() {
        var total = Money(10)
        total += Money(units: 5_000)
        #expect(total == Money(units: 105_000))
        total -= Money(1)
        #expect(total == Money(units: 95_000))
        #expect(Money(3) + Money(4) == Money(7))
        #expect(Money(3) - Money(4) == Money(units: -10_000))
        #expect(Money(units: 1) < Money(units: 2))
        #expect(Money(decimal: "2.5")! > Money(2))
        #expect([Money(3), Money(1), Money(2)].sorted() == [Money(1), Money(2), Money(3)])
        #expect(Money.zero.units == 0)
        #expect(Money(7).units == 70_000)
    }

    @Test func shareRoundsDown() {
        #expect(Money(10).share(basisPoints: 7000) == Money(7))
        #expect(Money(decimal: "18.5")!.share(basisPoints: 6500) == Money(decimal: "12.025"))
        // 3 units * 50% = 1.5 units -> 1
        #expect(Money(units: 3).share(basisPoints: 5000) == Money(units: 1))
        // 1 unit * 99.99% = 0.9999 units -> 0
        #expect(Money(units: 1).share(basisPoints: 9999) == .zero)
        // 0.0007 * 33.33% = 2.3331 units -> 2
        #expect(Money(units: 7).share(basisPoints: 3333) == Money(units: 2))
        #expect(Money(25).share(basisPoints: 10_000) == Money(25))
        #expect(Money(25).share(basisPoints: 0) == .zero)
    }

    /// Regression: `share` used to multiply `units * basisPoints` in Int64, which overflowed for
    /// large prices that `Money(decimal:)` accepts.
    @Test func shareOfLargeAcceptedPriceDoesNotCrash() async {
        await #expect(processExitsWith: .success) {
            let price = Money(decimal: "10000000000000")!  // 10^13, accepted by the parser
            let payout = price.share(basisPoints: 7000)
            if payout != Money(decimal: "7000000000000")! { fatalError("wrong payout \(payout)") }
        }
    }
}

struct PayoutRuleTests {
    @Test func shareOfPrice() {
        #expect(PayoutRule.share(basisPoints: 7000).payout(forPrice: Money(20)) == Money(14))
        #expect(PayoutRule.share(basisPoints: 6500).payout(forPrice: Money(decimal: "33.33")!) == Money(decimal: "21.6645"))
        #expect(PayoutRule.share(basisPoints: 3333).payout(forPrice: Money(units: 10)) == Money(units: 3))
    }

    @Test func fixedIsCappedAtPrice() {
        #expect(PayoutRule.fixed(Money(35)).payout(forPrice: Money(45)) == Money(35))
        #expect(PayoutRule.fixed(Money(35)).payout(forPrice: Money(30)) == Money(30))
        #expect(PayoutRule.fixed(Money(35)).payout(forPrice: Money(35)) == Money(35))
        #expect(PayoutRule.fixed(.zero).payout(forPrice: Money(35)) == .zero)
    }
}
