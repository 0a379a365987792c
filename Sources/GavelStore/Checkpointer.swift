import Dispatch
import GRDB
import Logging
import Synchronization

/// Copies the write-ahead log back into the database file every quarter second, on its own
/// connection and queue (`PRAGMA wal_checkpoint(PASSIVE)`: it waits for no reader or writer).
///
/// SQLite's automatic checkpoint runs inside the commit that crosses 1,000 pages, on the writer,
/// with an fsync of the database file: the rounds of that group commit, and every round queued
/// behind it, waited for it (135 ms seen under strace). Here no commit waits for a checkpoint.
/// When the log has grown past `restartPages` (readers kept a passive checkpoint from finishing),
/// a RESTART checkpoint waits briefly for them so that the log starts over instead of growing.
// @unchecked: `timer` is a DispatchSource, safe to cancel from any thread (Dispatch's own rule);
// everything else is Sendable.
final class Checkpointer: @unchecked Sendable {
    private let connection: DatabaseQueue
    private let queue = DispatchQueue(label: "gavel.store.checkpointer")
    private let timer: any DispatchSourceTimer
    private let stopped = Mutex(false)
    private let logger: Logger
    static let restartPages = 16_384

    init(path: String, logger: Logger) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(0.05)
        connection = try DatabaseQueue(path: path, configuration: configuration)
        self.logger = logger
        timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now() + .milliseconds(250), repeating: .milliseconds(250), leeway: .milliseconds(50))
        timer.setEventHandler { [weak self] in self?.checkpoint() }
        timer.resume()
    }

    private func checkpoint() {
        do {
            try connection.writeWithoutTransaction { db in
                let row = try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(PASSIVE)")
                let logPages: Int = row?[1] ?? 0
                if logPages > Checkpointer.restartPages {
                    _ = try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(RESTART)")
                }
            }
        } catch {
            logger.debug("checkpoint deferred", metadata: ["error": "\(error)"])
        }
    }

    /// Stops the timer and runs one last checkpoint.
    func stop() {
        let first = stopped.withLock { stopped in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        timer.cancel()
        queue.sync { checkpoint() }
    }
}
