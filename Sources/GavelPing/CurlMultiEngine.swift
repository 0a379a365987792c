import CCurl
import Foundation
import Logging
import Synchronization

/// Sends HTTP requests through one libcurl multi handle owned by a dedicated thread.
///
/// Callers `await send(_:)`; the request goes onto a lock-protected queue, an eventfd rouses the
/// loop, and the loop resumes the caller's continuation when the transfer ends. The loop uses
/// libcurl's socket interface with epoll, so each wake touches only the sockets that are ready:
/// thousands of transfers share the thread, and connections are kept alive across requests.
public final class CurlMultiEngine: Sendable {
    public struct Configuration: Sendable {
        /// Answers larger than this fail as `tooLarge`.
        public var maxResponseBytes: Int
        /// Connect timeout cap; each transfer's own deadline still applies.
        public var connectTimeoutMs: Int
        /// Idle connections kept open in the pool.
        public var maxIdleConnections: Int

        public init(maxResponseBytes: Int = 64 * 1024, connectTimeoutMs: Int = 1000, maxIdleConnections: Int = 1024) {
            self.maxResponseBytes = maxResponseBytes
            self.connectTimeoutMs = connectTimeoutMs
            self.maxIdleConnections = maxIdleConnections
        }
    }

    private struct Shared {
        var queue: [Transfer] = []
        var wakePending = false
        var shuttingDown = false
    }

    private let configuration: Configuration
    private let shared = Mutex(Shared())
    private let multi: CurlMulti
    private let stopped = DispatchSemaphore(value: 0)
    private let logger: Logger

    public init(configuration: Configuration = Configuration(), logger: Logger = Logger(label: "gavel.ping")) {
        CurlGlobal.initialize()
        self.configuration = configuration
        self.logger = logger
        self.multi = CurlMulti(maxConnects: configuration.maxIdleConnections)
        let thread = Thread { [self] in
            ccurl_name_this_thread("gavel-curl")
            self.runLoop()
        }
        thread.start()
    }

    /// Sends `request` and returns when the answer is complete or the request failed.
    /// Never throws: a transport failure is a value, because for an auction it is an answer too.
    public func send(_ request: HTTPRequest) async -> HTTPResult {
        await withCheckedContinuation { continuation in
            let transfer = Transfer(request: request, maxResponseBytes: configuration.maxResponseBytes,
                                    connectTimeoutMs: configuration.connectTimeoutMs, continuation: continuation)
            let shouldWake = shared.withLock { state -> Bool? in
                guard !state.shuttingDown else { return nil }
                state.queue.append(transfer)
                defer { state.wakePending = true }
                return !state.wakePending
            }
            switch shouldWake {
            case nil: transfer.finish(.failure(.shutdown()))
            case true?: multi.wakeup()
            case false?: break
            }
        }
    }

    /// Takes no new transfers, lets those in flight finish (each has its deadline), then stops the thread.
    public func shutdown() {
        let first = shared.withLock { state -> Bool in
            defer { state.shuttingDown = true }
            return !state.shuttingDown
        }
        guard first else { return }
        multi.wakeup()
        stopped.wait()
    }

    // MARK: The loop (engine thread only)

    private func runLoop() {
        var inFlight = 0
        while true {
            let (submitted, shuttingDown) = shared.withLock { state in
                state.wakePending = false
                let queue = state.queue
                state.queue.removeAll(keepingCapacity: true)
                return (queue, state.shuttingDown)
            }
            for transfer in submitted {
                if let error = transfer.start(on: multi) {
                    transfer.finish(.failure(error))
                } else {
                    inFlight += 1
                }
            }
            if shuttingDown && inFlight == 0 { break }
            multi.waitAndDispatch(maxWaitMs: 1000)
            inFlight -= multi.drainCompleted()
        }
        logger.debug("curl engine stopped")
        stopped.signal()
    }
}

/// Process-wide libcurl set-up, once.
enum CurlGlobal {
    private static let once: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()
    static func initialize() { _ = once }
}

/// Owns the `CURLM` handle, its epoll set and a pool of easy handles.
///
/// `@unchecked Sendable`: every method but `wakeup` runs on the engine thread only, and so do the
/// libcurl callbacks (they are called from inside `curl_multi_socket_action`); `wakeup` only
/// writes to an eventfd, which is safe from any thread.
final class CurlMulti: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer
    private let epoll: Int32
    private let wakeFD: Int32
    private var idleEasyHandles: [UnsafeMutableRawPointer] = []
    /// Sockets libcurl asked us to watch.
    private var watched: Set<Int32> = []
    /// When libcurl wants `CURL_SOCKET_TIMEOUT`, as set by its timer callback.
    private var timerDeadline: DispatchTime?
    private var readyFDs = [Int32](repeating: 0, count: Int(CCURL_EPOLL_BATCH))
    private var readyEvents = [UInt32](repeating: 0, count: Int(CCURL_EPOLL_BATCH))

    init(maxConnects: Int) {
        handle = curl_multi_init()
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        _ = ccurl_epoll_ctl(epoll, EPOLL_CTL_ADD, wakeFD, EPOLLIN.rawValue)
        _ = ccurl_multi_setopt_long(handle, CURLMOPT_MAXCONNECTS, maxConnects)
        let me = Unmanaged.passUnretained(self).toOpaque()
        _ = ccurl_multi_setopt_pointer(handle, CURLMOPT_SOCKETDATA, me)
        _ = ccurl_multi_setopt_pointer(handle, CURLMOPT_TIMERDATA, me)
        _ = ccurl_multi_setopt_socket_function(handle) { _, socket, what, userp, _ in
            guard let userp else { return 0 }
            Unmanaged<CurlMulti>.fromOpaque(userp).takeUnretainedValue().watch(socket: socket, what: what)
            return 0
        }
        _ = ccurl_multi_setopt_timer_function(handle) { _, timeoutMs, userp in
            guard let userp else { return 0 }
            let multi = Unmanaged<CurlMulti>.fromOpaque(userp).takeUnretainedValue()
            multi.timerDeadline = timeoutMs < 0 ? nil : DispatchTime.now() + .milliseconds(timeoutMs)
            return 0
        }
    }

    deinit {
        for easy in idleEasyHandles { curl_easy_cleanup(easy) }
        curl_multi_cleanup(handle)
        close(epoll)
        close(wakeFD)
    }

    func wakeup() { ccurl_eventfd_signal(wakeFD) }

    func takeEasyHandle() -> UnsafeMutableRawPointer? {
        if let easy = idleEasyHandles.popLast() {
            curl_easy_reset(easy)
            return easy
        }
        return curl_easy_init()
    }

    /// libcurl's socket callback: start, change or stop watching a socket.
    private func watch(socket: curl_socket_t, what: Int32) {
        if what == CURL_POLL_REMOVE {
            if watched.remove(socket) != nil { _ = ccurl_epoll_ctl(epoll, EPOLL_CTL_DEL, socket, 0) }
            return
        }
        var events: UInt32 = 0
        if what == CURL_POLL_IN || what == CURL_POLL_INOUT { events |= EPOLLIN.rawValue }
        if what == CURL_POLL_OUT || what == CURL_POLL_INOUT { events |= EPOLLOUT.rawValue }
        if watched.insert(socket).inserted {
            _ = ccurl_epoll_ctl(epoll, EPOLL_CTL_ADD, socket, events)
        } else {
            _ = ccurl_epoll_ctl(epoll, EPOLL_CTL_MOD, socket, events)
        }
    }

    /// Waits for ready sockets, the eventfd or libcurl's timer, and lets libcurl act on them.
    func waitAndDispatch(maxWaitMs: Int32) {
        var waitMs = maxWaitMs
        if let deadline = timerDeadline {
            let now = DispatchTime.now().uptimeNanoseconds
            let due = deadline.uptimeNanoseconds
            // Round up: waking a little late costs nothing, waking early spins.
            waitMs = due <= now ? 0 : min(maxWaitMs, Int32((due - now + 999_999) / 1_000_000))
        }
        let count = readyFDs.withUnsafeMutableBufferPointer { fds in
            readyEvents.withUnsafeMutableBufferPointer { events in
                ccurl_epoll_wait(epoll, fds.baseAddress, events.baseAddress, waitMs)
            }
        }
        var running: Int32 = 0
        if count > 0 {
            for index in 0..<Int(count) {
                let fd = readyFDs[index]
                let events = readyEvents[index]
                if fd == wakeFD {
                    ccurl_eventfd_drain(wakeFD)
                    continue
                }
                var mask: Int32 = 0
                if events & EPOLLIN.rawValue != 0 { mask |= CURL_CSELECT_IN }
                if events & EPOLLOUT.rawValue != 0 { mask |= CURL_CSELECT_OUT }
                if events & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 { mask |= CURL_CSELECT_ERR }
                curl_multi_socket_action(handle, fd, mask, &running)
            }
        }
        if let deadline = timerDeadline, deadline <= DispatchTime.now() {
            timerDeadline = nil
            curl_multi_socket_action(handle, ccurl_socket_timeout, 0, &running)
        }
    }

    /// Finishes every completed transfer; returns how many.
    func drainCompleted() -> Int {
        var completed = 0
        var remaining: Int32 = 0
        while let message = curl_multi_info_read(handle, &remaining) {
            guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
            let result = ccurl_msg_result(message)
            var privatePointer: UnsafeMutableRawPointer?
            _ = ccurl_easy_getinfo_pointer(easy, CURLINFO_PRIVATE, &privatePointer)
            curl_multi_remove_handle(handle, easy)
            guard let privatePointer else { continue }
            let transfer = Unmanaged<Transfer>.fromOpaque(privatePointer).takeRetainedValue()
            transfer.complete(easy: easy, code: result)
            idleEasyHandles.append(easy)
            completed += 1
        }
        return completed
    }
}
