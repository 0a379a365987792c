import GavelExchange
import Testing

/// CSV answers open safely in a spreadsheet: formulas are neutralised, numbers stay numbers.
struct CSVTableTests {
    @Test func formulasGetAQuoteAndNumbersDoNot() {
        var table = CSVTable(header: ["a"])
        for cell in ["-1+HYPERLINK(\"http://evil\",\"x\")", "=SUM(A1)", "+1", "@x", "-12.5", "-3", "12", "plain, with comma"] { table.append([cell]) }
        let lines = table.text.split(separator: "\r\n").map(String.init)
        #expect(lines[1] == "\"'-1+HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\"")
        #expect(lines[2] == "'=SUM(A1)")
        #expect(lines[3] == "'+1")
        #expect(lines[4] == "'@x")
        #expect(lines[5] == "-12.5")
        #expect(lines[6] == "-3")
        #expect(lines[7] == "12")
        #expect(lines[8] == "\"plain, with comma\"")
    }
}
