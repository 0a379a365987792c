import GavelStore
import Logging
import PostgresNIO
import Synchronization

/// The listening connections of `signals()`: each stream has its own task and its own connection
/// (not from the pool: LISTEN holds it for good). Ended by the stream's consumer or by `close`.
final class SignalHub: Sendable {
    private struct State {
        var tasks: [Int: Task<Void, Never>] = [:]
        var next = 0
        var closed = false
    }

    private let state = Mutex(State())

    /// Keeps `task` until it ends or the hub closes; false (and the task cancelled) once closed.
    func add(_ make: (Int) -> Task<Void, Never>) -> Int? {
        let id = state.withLock { state -> Int? in
            guard !state.closed else { return nil }
            state.next += 1
            return state.next
        }
        guard let id else { return nil }
        let task = make(id)
        let kept = state.withLock { state -> Bool in
            guard !state.closed else { return false }
            state.tasks[id] = task
            return true
        }
        if !kept { task.cancel() }
        return id
    }

    func remove(_ id: Int) {
        state.withLock { $0.tasks.removeValue(forKey: id) }?.cancel()
    }

    func close() {
        let tasks = state.withLock { state -> [Task<Void, Never>] in
            state.closed = true
            defer { state.tasks = [:] }
            return Array(state.tasks.values)
        }
        for task in tasks { task.cancel() }
    }
}

extension PostgresStore: ClusterSignals {
    static let channel = "gavel"

    /// Tells every node (this one too) about `signal`, and bumps the epoch the slow poll reads, in
    /// one transaction (the notice goes out at its commit).
    public func publish(_ signal: ClusterSignal) async throws(StoreError) {
        let payload = signal.rawValue
        try await write("publish \(payload)") { connection in
            try await connection.run("UPDATE signal_epoch SET epoch = epoch + 1")
            try await connection.run("SELECT pg_notify(\(PostgresStore.channel), \(payload))")
        }
    }

    /// Signals as they arrive, on a dedicated connection, until the consuming task is cancelled or
    /// the store closes. After a lost connection it reconnects (a short back-off, up to 2 s) and
    /// then yields `.resync`: a notice may have been missed.
    public func signals() -> AsyncStream<ClusterSignal> {
        let (stream, continuation) = AsyncStream.makeStream(of: ClusterSignal.self, bufferingPolicy: .bufferingNewest(64))
        let logger = logger
        guard let configuration = try? Self.connectionConfiguration(self.configuration) else {
            // Required TLS could not be set up: no plain-text LISTEN; the slow poll still carries changes.
            logger.error("cluster signals not listened to: TLS is required and could not be set up")
            continuation.finish()
            return stream
        }
        let hub = signalHub
        let id = hub.add { id in
            Task {
                await Self.listen(configuration: configuration, connectionID: id, logger: logger, into: continuation)
                continuation.finish()
            }
        }
        guard let id else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { _ in hub.remove(id) }
        return stream
    }

    private static func listen(configuration: PostgresConnection.Configuration, connectionID: Int, logger: Logger,
                               into continuation: AsyncStream<ClusterSignal>.Continuation) async {
        var lost = false
        var backoff = Duration.milliseconds(100)
        while !Task.isCancelled {
            do {
                let connection = try await PostgresConnection.connect(configuration: configuration, id: connectionID, logger: quiet)
                do {
                    try await connection.listen(on: channel) { notifications in
                        // LISTEN is in place: whatever was published while it was down is re-read.
                        if lost { continuation.yield(.resync) }
                        lost = false
                        backoff = .milliseconds(100)
                        for try await notification in notifications {
                            if let signal = ClusterSignal(rawValue: notification.payload), signal != .resync { continuation.yield(signal) }
                        }
                    }
                } catch {
                    try? await connection.close()
                    throw error
                }
                try? await connection.close()
            } catch {
                guard !Task.isCancelled else { return }
                logger.debug("signal connection lost", metadata: ["error": "\(describe(error))"])
            }
            guard !Task.isCancelled else { return }
            lost = true
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(2))
        }
    }

    /// A number that changes with every published signal, for the slow poll that backs up LISTEN.
    public func signalEpoch() async throws(StoreError) -> Int64 {
        try await read("signal epoch") { connection in
            try await connection.rows("SELECT epoch FROM signal_epoch").first?.decode(Int64.self) ?? 0
        }
    }
}
