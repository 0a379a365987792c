import GavelExchange
import GavelStore
import Logging
import ServiceLifecycle

/// A node of a cluster (several `gavel serve` on one PostgreSQL database): beats every second
/// (live nodes for rate limits, every node's usage for eligibility, a dead node's claims settled
/// every five), and hears the others: a config reload or a portal pause on any node reaches this
/// one at once by LISTEN/NOTIFY, or within `pollSeconds` by the slow poll if a notice is lost.
struct ClusterService: Service {
    let exchange: Exchange
    let cluster: any ClusterState
    let directory: String
    let logger: Logger
    var pollSeconds = 5

    func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await beat() }
            group.addTask { await listen() }
            await group.next()
            group.cancelAll()
        }
    }

    private func beat() async {
        var tick = 0
        var epoch = try? await cluster.signalEpoch()
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            tick += 1
            await exchange.clusterBeat(reclaim: tick % 5 == 0)
            guard tick % pollSeconds == 0, let now = try? await cluster.signalEpoch() else { continue }
            if let seen = epoch, seen != now {
                logger.notice("cluster change found by the poll; re-reading config and pauses", metadata: ["epoch": "\(now)"])
                await apply(.resync)
            }
            epoch = now
        }
    }

    private func listen() async {
        for await signal in cluster.signals().cancelOnGracefulShutdown() {
            await apply(signal)
        }
    }

    private func apply(_ signal: ClusterSignal) async {
        switch signal {
        case .pausesChanged:
            await exchange.refreshPortalPauses()
        case .configReloaded:
            ConfigReloadService.reload(exchange: exchange, directory: directory, logger: logger)
        case .resync:
            ConfigReloadService.reload(exchange: exchange, directory: directory, logger: logger)
            await exchange.refreshPortalPauses()
        }
    }
}
