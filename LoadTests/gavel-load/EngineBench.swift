import ArgumentParser
import Foundation
import GavelPing
import Synchronization

/// `gavel-load engine`: the ping engine alone, as fast as it goes, against buyers that cost nothing.
///
/// Closed loop: `--concurrency` workers each send a batch of `--batch` pings at once (a round's
/// fan-out, through `send(all:)`, as the exchange does) and send the next batch as soon as the last
/// answer is in. No exchange, no seller HTTP, no parsing beyond the status: what is measured is the
/// engine's own cost per request. It reports requests per second and the CPU the engine thread and
/// the whole process spent per request, read from `/proc`. Pin it to one core with `taskset` (and
/// the buyers to the other) to read "requests per second on one core".
struct EngineBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "The ping engine alone against buyers that answer at once: requests/s and CPU per request.")

    @Option(help: "The buyers' base URL (S5's nginx: every path ending in /ping answers a bid).")
    var url: String

    @Option(help: "Buyers per batch: pings sent together, as one round's fan-out.")
    var batch = 10

    @Option(help: "Batches in flight at once (closed loop).")
    var concurrency = 32

    @Option(help: "Seconds to measure, after --warmup-seconds.")
    var seconds = 5.0

    @Option(help: "Seconds of warm-up (connections opened, caches warm) before measuring.")
    var warmupSeconds = 1.0

    @Option(help: "Bytes of JSON body per ping (the exchange's pings are ~500–700 bytes).")
    var bodyBytes = 600

    func validate() throws {
        guard batch >= 1, batch <= 1000 else { throw ValidationError("--batch must be 1...1000") }
        guard concurrency >= 1, concurrency <= 4096 else { throw ValidationError("--concurrency must be 1...4096") }
        guard seconds > 0, warmupSeconds >= 0 else { throw ValidationError("--seconds must be > 0, --warmup-seconds >= 0") }
        guard bodyBytes >= 2 else { throw ValidationError("--body-bytes must be at least 2") }
    }

    func run() async throws {
        let base = url.hasSuffix("/") ? String(url.dropLast()) : url
        let body = Array(("{\"pad\":\"" + String(repeating: "x", count: max(0, bodyBytes - 10)) + "\"}").utf8)
        let requests = (0..<batch).map { index in
            HTTPRequest(url: "\(base)/s5-\(String(format: "%02d", index % 100))/ping",
                        headers: [("Content-Type", "application/json"), ("X-Gavel-Auction", "bench")],
                        body: body, timeoutMs: 1000)
        }
        let engine = CurlMultiEngine(configuration: .init(maxIdleConnections: batch * concurrency + 64))
        defer { engine.shutdown() }

        let counts = Counter()
        let seconds = seconds
        let stopAt = Monotonic.now() + UInt64((warmupSeconds + seconds) * 1e9)
        let warmupEndsAt = Monotonic.now() + UInt64(warmupSeconds * 1e9)

        let sampler = Task {
            try? await Task.sleep(nanoseconds: warmupEndsAt - min(warmupEndsAt, Monotonic.now()))
            let start = CPUSample.take()
            counts.state.withLock { $0.measuring = true }
            try? await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
            counts.state.withLock { $0.measuring = false }
            return (start, CPUSample.take())
        }
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    while Monotonic.now() < stopAt {
                        let results = await engine.send(all: requests)
                        var ok = 0
                        for case .success(let response) in results where response.status == 200 { ok += 1 }
                        counts.state.withLock {
                            guard $0.measuring else { return }
                            $0.ok += ok
                            $0.failed += results.count - ok
                        }
                    }
                }
            }
        }
        let (start, end) = await sampler.value
        let measured = counts.state.withLock { $0 }
        let wallS = Double(end.wallNs - start.wallNs) / 1e9
        let total = measured.ok + measured.failed
        let perSecond = Double(total) / wallS
        let engineCPUs = end.engineThreadS - start.engineThreadS
        let processCPUs = end.processS - start.processS
        func microsPerRequest(_ cpuS: Double) -> String { total == 0 ? "-" : String(format: "%.1f", cpuS * 1e6 / Double(total)) }
        Console.out(String(format: "engine: %d requests in %.2f s = %.0f req/s (batch %d x %d in flight, %d failed)",
                           total, wallS, perSecond, batch, concurrency, measured.failed))
        Console.out(String(format: "  engine thread: %.0f%% of a core, %@ µs CPU per request = %.0f requests per engine-core-second",
                           engineCPUs / wallS * 100, microsPerRequest(engineCPUs), engineCPUs > 0 ? Double(total) / engineCPUs : 0))
        Console.out(String(format: "  whole process: %.0f%% of a core, %@ µs CPU per request = %.0f requests per process-core-second",
                           processCPUs / wallS * 100, microsPerRequest(processCPUs), processCPUs > 0 ? Double(total) / processCPUs : 0))
        if measured.failed > 0 { throw ExitCode(3) }
    }

    /// Answers counted while measuring (not during warm-up).
    private final class Counter: Sendable {
        struct State: Sendable {
            var measuring = false
            var ok = 0
            var failed = 0
        }
        let state = Mutex(State())
    }
}

/// CPU time of the engine thread (named `gavel-curl`) and of the whole process, from /proc.
private struct CPUSample: Sendable {
    var wallNs: UInt64
    var engineThreadS: Double
    var processS: Double

    static func take() -> CPUSample {
        let engine = ThreadReading.take(pid: getpid()).groups[ThreadReading.role(ofThreadNamed: "gavel-curl")]?.cpuSeconds ?? 0
        return CPUSample(wallNs: Monotonic.now(), engineThreadS: engine, processS: CPUReading.cpuSeconds(pid: getpid()) ?? 0)
    }
}
