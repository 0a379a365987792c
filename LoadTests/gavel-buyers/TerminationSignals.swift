import Dispatch
import Foundation

/// Delivers SIGINT and SIGTERM as values instead of letting them kill the process, so the fleet can
/// shut down cleanly and exit 0.
final class TerminationSignals {
    /// A caught signal.
    struct Signal: Sendable {
        var number: Int32
        var name: String { number == SIGINT ? "SIGINT" : number == SIGTERM ? "SIGTERM" : "signal \(number)" }
    }

    private let stream: AsyncStream<Signal>
    // Held so the handlers stay installed for as long as this object lives.
    private let sources: [any DispatchSourceSignal]

    init() {
        let (stream, continuation) = AsyncStream.makeStream(of: Signal.self)
        self.stream = stream
        sources = [SIGINT, SIGTERM].map { number in
            // The default action would end the process before the handler runs.
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { continuation.yield(Signal(number: number)) }
            source.resume()
            return source
        }
    }

    deinit {
        for source in sources {
            source.cancel()
        }
    }

    /// Waits for the next signal.
    func next() async -> Signal {
        var iterator = stream.makeAsyncIterator()
        // The stream is never finished, so it only ends by yielding a signal.
        return await iterator.next() ?? Signal(number: SIGTERM)
    }
}
