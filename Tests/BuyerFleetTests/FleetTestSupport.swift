import BuyerFleet
import Foundation

/// Runs `body` against a started fleet on an ephemeral port, and always shuts the fleet down.
func withFleet<T>(
    _ buyers: [String: BuyerBehavior],
    _ body: (BuyerFleet) async throws -> T
) async throws -> T {
    let fleet = BuyerFleet(buyers: buyers, threads: 1, seed: 42)
    try await fleet.start()
    do {
        let result = try await body(fleet)
        try await fleet.shutdown()
        return result
    } catch {
        try? await fleet.shutdown()
        throw error
    }
}

/// A behaviour that answers at once, so tests spend no time waiting unless they mean to.
func instant(_ configure: (inout BuyerBehavior) -> Void = { _ in }) -> BuyerBehavior {
    var behavior = BuyerBehavior(latency: .fixed(ms: 0))
    configure(&behavior)
    return behavior
}

let cleanPing = #"{"vertical": "auto", "zip": "90210", "state": "CA", "lead_id": "L-1"}"#
