import GavelStore

extension Exchange {
    /// The recorded round `id` (any kind), for read-backs: the edge asks the exchange, not its store.
    public func round(id: String) async throws(ExchangeError) -> StoredRound? {
        do { return try await store.round(id: id) } catch { throw .storage("\(error)") }
    }
}
