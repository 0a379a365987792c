import NIOCore
import NIOHTTP1

/// What the HTTP handler does for one request: decided under the buyer's lock, carried out on the
/// connection's event loop after `delay`.
struct Reply: Sendable {
    enum Action: Sendable {
        /// A complete response; a nil body means no body at all (204).
        case respond(HTTPResponseStatus, body: ByteBuffer?)
        /// The response head with the body's Content-Length, then the body one byte per tick.
        case drip(ByteBuffer)
        /// An empty response with this status and a `Location` header.
        case redirect(HTTPResponseStatus, location: String)
        /// No response, ever.
        case hang
        /// Abort the connection with a TCP RST.
        case reset
        /// Close the connection without a response.
        case close
    }

    var delay: TimeAmount
    var action: Action

    /// The reply for `fault`; `validBody` is what a well-behaved answer would have been, and
    /// `behavior` sizes and aims the faults that take a parameter.
    static func fault(_ fault: BuyerBehavior.Fault, delay: TimeAmount, validBody: String, behavior: BuyerBehavior) -> Reply {
        switch fault {
        case .hang: Reply(delay: .zero, action: .hang)
        case .reset: Reply(delay: delay, action: .reset)
        case .garbage: Reply(delay: delay, action: .respond(.ok, body: ResponseBody.garbage))
        case .http500: Reply(delay: delay, action: .respond(.internalServerError, body: ResponseBody.internalError))
        case .slowDrip: Reply(delay: delay, action: .drip(ByteBuffer(string: validBody)))
        case .oversized: Reply(delay: delay, action: .respond(.ok, body: ResponseBody.oversized(bytes: behavior.oversizedBytes)))
        case .refused: Reply(delay: .zero, action: .close)
        case .redirect: Reply(delay: delay, action: .redirect(.temporaryRedirect, location: behavior.redirectTo))
        }
    }
}

extension TimeAmount {
    /// Milliseconds as a timer delay, rounded to the nanosecond and capped at an hour.
    init(milliseconds: Double) {
        let nanoseconds = (min(max(milliseconds, 0), 3_600_000) * 1_000_000).rounded()
        self = .nanoseconds(Int64(nanoseconds))
    }
}
