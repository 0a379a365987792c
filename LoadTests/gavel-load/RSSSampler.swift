import Foundation
import Synchronization

/// Samples a process's RSS once a second while a step runs, for its maximum and per-window values.
final class RSSSampler: Sendable {
    private struct State: Sendable {
        var samples: [(offsetNs: UInt64, kib: Int)] = []
    }

    private let pid: Int32
    private let startNs: UInt64
    private let state = Mutex(State())
    private let task = Mutex<Task<Void, Never>?>(nil)

    init(pid: Int32, startNs: UInt64) {
        self.pid = pid
        self.startNs = startNs
    }

    func start() {
        sample()
        let runner = Task { [self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                sample()
            }
        }
        task.withLock { $0 = runner }
    }

    /// Stops sampling after one last reading.
    func stop() {
        task.withLock { $0?.cancel() }
        sample()
    }

    private func sample() {
        guard let kib = Probes.rssKiB(pid: pid) else { return }
        let now = Monotonic.now()
        state.withLock { $0.samples.append((now > startNs ? now - startNs : 0, kib)) }
    }

    /// The latest reading, in KiB.
    var latestKiB: Int? { state.withLock { $0.samples.last?.kib } }

    /// Start, end and maximum; nil when the process could not be read.
    var summary: RSSResult? {
        state.withLock { state in
            guard let first = state.samples.first, let last = state.samples.last else { return nil }
            return RSSResult(startKiB: first.kib, endKiB: last.kib, maxKiB: state.samples.map(\.kib).max() ?? last.kib)
        }
    }

    /// The last reading taken at or before `offsetNs` after the start.
    func kib(atOffsetNs offsetNs: UInt64) -> Int? {
        state.withLock { state in state.samples.last { $0.offsetNs <= offsetNs }?.kib ?? state.samples.first?.kib }
    }
}
