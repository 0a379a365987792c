import Dispatch
import Foundation

/// Monotonic time in nanoseconds, the one clock every measurement of the generator uses.
enum Monotonic {
    /// Nanoseconds since an arbitrary fixed point (boot); never goes backwards.
    @inline(__always)
    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Sleeps the calling thread (never a Swift concurrency thread) for about `nanoseconds`.
    static func sleep(nanoseconds: UInt64) {
        guard nanoseconds > 0 else { return }
        var request = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }
}

extension UInt64 {
    /// Nanoseconds to milliseconds, for printing.
    var nanosAsMs: Double { Double(self) / 1_000_000 }
}
