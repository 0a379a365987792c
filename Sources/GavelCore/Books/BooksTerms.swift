/// Someone who runs the exchange: reads the books (`GET /v1/reports/...`), makes adjustments and
/// signs in to the dashboard with `apiKey` (`operators.yaml`).
public struct Operator: Sendable, Hashable {
    public var id: String
    public var apiKey: String

    public init(id: String, apiKey: String) {
        self.id = id
        self.apiKey = apiKey
    }
}

/// What a return does to the seller's payout (a campaign's `return_policy`).
public enum ReturnPolicy: String, Sendable, Hashable, CaseIterable {
    /// The seller's payout for the returned sale is taken back (the default).
    case reversePayout = "reverse_payout"
    /// The seller keeps its payout; the exchange bears the return.
    case keepPayout = "keep_payout"

    /// The payout taken back when a sale paying `payout` is returned.
    public func reversal(of payout: Money) -> Money {
        switch self {
        case .reversePayout: return payout
        case .keepPayout: return .zero
        }
    }
}

/// Why a buyer returned a lead (CONTRACT v2).
public enum ReturnReason: String, Sendable, Hashable, CaseIterable {
    case invalidPhone = "invalid_phone"
    case duplicate
    case notInterested = "not_interested"
    case other
}

extension Campaign {
    /// `return_window_days` when a campaign sets none.
    public static let defaultReturnWindowDays = 7
    /// The longest `return_window_days` a config may set.
    public static let maxReturnWindowDays = 365
}

extension ExchangeConfig {
    /// The operator holding this API key, if any.
    public func `operator`(apiKey: String) -> Operator? { operators.first { $0.apiKey == apiKey } }
}
