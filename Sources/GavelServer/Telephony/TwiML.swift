import GavelCore

/// The TwiML documents Gavel answers a provider's voice webhooks with. Pure text, built from the
/// call's routing and the campaign's phone lines, so a retried webhook gets the same document.
enum TwiML {
    static let contentType = "text/xml; charset=utf-8"
    private static let header = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"

    /// Dials `destination` (a number, or a `sip:` URI); the provider reports the outcome to `action`.
    static func dial(_ destination: String, lines: CampaignPhoneLines, timeLimitS: Int, action: String, recordingCallback: String) -> String {
        var attributes = [
            ("action", action), ("method", "POST"), ("timeout", String(lines.dialTimeoutS)), ("timeLimit", String(timeLimitS)),
        ]
        if let callerID = lines.callerID { attributes.append(("callerId", callerID)) }
        if lines.record {
            attributes.append(("record", "record-from-answer"))
            attributes.append(("recordingStatusCallback", recordingCallback))
            attributes.append(("recordingStatusCallbackMethod", "POST"))
        }
        let noun = destination.hasPrefix("sip:") ? "Sip" : "Number"
        return header + "<Response><Dial" + attributes.map { " \($0.0)=\"\(escape($0.1))\"" }.joined() + ">"
            + "<\(noun)>\(escape(destination))</\(noun)></Dial></Response>"
    }

    /// No buyer takes the call: the campaign's fallback number (dialled with no callback into
    /// routing), else the message and a hang-up.
    static func noBuyer(_ lines: CampaignPhoneLines) -> String {
        if let fallback = lines.fallbackNumber {
            var attributes = " timeout=\"\(lines.dialTimeoutS)\""
            if let callerID = lines.callerID { attributes += " callerId=\"\(escape(callerID))\"" }
            return header + "<Response><Dial\(attributes)><Number>\(escape(fallback))</Number></Dial></Response>"
        }
        return say(lines.noBuyerMessage)
    }

    static func say(_ message: String) -> String {
        header + "<Response><Say>\(escape(message))</Say><Hangup/></Response>"
    }

    static let hangUp = header + "<Response><Hangup/></Response>"
    /// An acknowledgement with nothing to do (recording callbacks).
    static let empty = header + "<Response/>"

    static func escape(_ text: String) -> String {
        var output = ""
        for character in text {
            switch character {
            case "&": output += "&amp;"
            case "<": output += "&lt;"
            case ">": output += "&gt;"
            case "\"": output += "&quot;"
            case "'": output += "&apos;"
            default: output.append(character)
            }
        }
        return output
    }
}
