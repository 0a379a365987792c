import CCurl
import Foundation
import Logging
import Synchronization

/// Sends HTTP requests through one libcurl multi handle owned by a dedicated thread.
///
/// Callers `await send(_:)`; the request goes onto a lock-protected queue, `curl_multi_wakeup`
/// rouses the loop, and the loop resumes the caller's continuation when the transfer ends.
/// Thousands of transfers share the thread, and connections are kept alive across requests.
///
/// Host names are resolved by a `HostResolver` before a transfer reaches the thread and pinned on it,
/// so no lookup ever runs on, or stalls, the engine thread; `prepare(urls:)` resolves buyers ahead of
/// time. Proxy environment variables are ignored.
public final class CurlMultiEngine: Sendable {
    public struct Configuration: Sendable {
        /// Answers larger than this fail as `tooLarge`.
        public var maxResponseBytes: Int
        /// Connect timeout cap; each transfer's own deadline still applies.
        public var connectTimeoutMs: Int
        /// Idle connections kept open in the pool.
        public var maxIdleConnections: Int
        /// How the engine thread waits for sockets.
        public var loop: Loop

        /// `epoll` (the default): libcurl's socket interface (`curl_multi_socket_action`) with an
        /// epoll set, which touches only the sockets that are ready. `poll`: `curl_multi_perform`
        /// then `curl_multi_poll`, which look at every transfer in flight on every wake. Against
        /// zero-latency buyers (LoadTests S5, two runs each way, 2026-11-30) epoll halved the
        /// seller's p50 at 1,000 auctions/s (5.9/9.2 ms against 11.8/13.0 ms) and took ~4% less CPU.
        /// `GAVEL_CURL_LOOP` (`poll` or `epoll`) picks one for a whole process, for side-by-side runs.
        public enum Loop: String, Sendable { case poll, epoll }

        public init(maxResponseBytes: Int = 64 * 1024, connectTimeoutMs: Int = 1000, maxIdleConnections: Int = 1024,
                    loop: Loop? = nil) {
            self.maxResponseBytes = maxResponseBytes
            self.connectTimeoutMs = connectTimeoutMs
            self.maxIdleConnections = maxIdleConnections
            self.loop = loop ?? ProcessInfo.processInfo.environment["GAVEL_CURL_LOOP"].flatMap(Loop.init(rawValue:)) ?? .epoll
        }
    }

    private struct Shared {
        var queue: [Transfer] = []
        var wakePending = false
        var shuttingDown = false
    }

    private let configuration: Configuration
    private let resolver: HostResolver
    private let shared = Mutex(Shared())
    private let multi: CurlMulti
    private let stopped = DispatchSemaphore(value: 0)
    private let logger: Logger

    /// - Parameter resolver: resolves host names off the engine thread; a `HostResolver` over
    ///   `getaddrinfo` unless given.
    public init(configuration: Configuration = Configuration(), resolver: HostResolver? = nil,
                logger: Logger = Logger(label: "gavel.ping")) {
        CurlGlobal.initialize()
        self.configuration = configuration
        self.resolver = resolver ?? HostResolver(logger: logger)
        self.logger = logger
        self.multi = CurlMulti(maxConnects: configuration.maxIdleConnections, loop: configuration.loop)
        let thread = Thread { [self] in
            #if os(Linux)
            ccurl_name_this_thread("gavel-curl")
            #endif
            self.runLoop()
        }
        thread.start()
    }

    /// Starts resolving the host names in `urls` in the background and keeps them fresh, so
    /// transfers to them find their addresses waiting. Call it with every buyer URL at start-up and
    /// after each config reload. Never blocks; address literals and URLs that do not parse are skipped.
    public func prepare(urls: some Sequence<String>) {
        resolver.prepare(hosts: urls.compactMap { TransferTarget(url: $0)?.hostName })
    }

    /// Sends `request` and returns when the answer is complete or the request failed.
    /// Never throws: a transport failure is a value, because for an auction it is an answer too.
    ///
    /// A host name not resolved yet is waited for up to the request's deadline, off the engine
    /// thread; a host whose lookup failed recently fails at once. Both fail as `dns`.
    public func send(_ request: HTTPRequest) async -> HTTPResult {
        let startNanos = DispatchTime.now().uptimeNanoseconds
        let addressing: Transfer.Addressing
        switch await resolveAddressing(for: request, startNanos: startNanos) {
        case .success(let found): addressing = found
        case .failure(let error): return .failure(error)
        }
        return await withCheckedContinuation { continuation in
            let transfer = Transfer(request: request, addressing: addressing, startNanos: startNanos,
                                    maxResponseBytes: configuration.maxResponseBytes,
                                    connectTimeoutMs: configuration.connectTimeoutMs, completion: .single(continuation))
            submit([transfer])
        }
    }

    /// Sends every request at once and returns their results in request order, when the last has
    /// answered or failed (each has its own deadline). A round's pings go this way: one submission,
    /// one wake-up of the engine and one resumption of the caller for all of them. A host still
    /// being resolved holds back only its own request, never the others.
    public func send(all requests: [HTTPRequest]) async -> [HTTPResult] {
        guard !requests.isEmpty else { return [] }
        let startNanos = DispatchTime.now().uptimeNanoseconds
        let batch = TransferBatch(count: requests.count)
        var ready: [Transfer] = []
        var pending: [Int] = []
        for (index, request) in requests.enumerated() {
            switch addressingNow(for: request, startNanos: startNanos) {
            case .success(let found)?: ready.append(transfer(request, found, startNanos, .batch(batch, index: index)))
            case .failure(let error)?: batch.deliver(.failure(error), at: index)
            case nil: pending.append(index)
            }
        }
        submit(ready)
        for index in pending {
            switch await resolveAddressing(for: requests[index], startNanos: startNanos) {
            case .success(let found): submit([transfer(requests[index], found, startNanos, .batch(batch, index: index))])
            case .failure(let error): batch.deliver(.failure(error), at: index)
            }
        }
        return await batch.results()
    }

    private func transfer(_ request: HTTPRequest, _ addressing: Transfer.Addressing, _ startNanos: UInt64,
                          _ completion: Transfer.Completion) -> Transfer {
        Transfer(request: request, addressing: addressing, startNanos: startNanos, maxResponseBytes: configuration.maxResponseBytes,
                 connectTimeoutMs: configuration.connectTimeoutMs, completion: completion)
    }

    /// Queues transfers for the engine thread and wakes it once.
    private func submit(_ transfers: [Transfer]) {
        guard !transfers.isEmpty else { return }
        let shouldWake = shared.withLock { state -> Bool? in
            guard !state.shuttingDown else { return nil }
            state.queue.append(contentsOf: transfers)
            defer { state.wakePending = true }
            return !state.wakePending
        }
        switch shouldWake {
        case nil: for transfer in transfers { transfer.finish(.failure(.shutdown())) }
        case true?: multi.wakeup()
        case false?: break
        }
    }

    /// Resolves the request's host name on the caller's task, never on the engine thread.
    /// The addressing of `request` if known now, without waiting; nil while its host is being resolved.
    private func addressingNow(for request: HTTPRequest, startNanos: UInt64) -> Result<Transfer.Addressing, HTTPTransferError>? {
        guard request.url.hasPrefix("http://") || request.url.hasPrefix("https://"),
              let target = TransferTarget(url: request.url) else { return .success(.unparsed) }
        guard let host = target.hostName else { return .success(.literal) }
        let elapsedUs = Int((DispatchTime.now().uptimeNanoseconds - startNanos) / 1000)
        switch resolver.answer(for: host) {
        case .addresses(let addresses):
            guard let pin = target.pin(addresses) else { return .failure(.dns("host did not resolve", latencyUs: elapsedUs)) }
            return .success(.pinned(pin))
        case .failed:
            return .failure(.dns("host did not resolve", latencyUs: elapsedUs))
        case .pending:
            return nil
        }
    }

    private func resolveAddressing(for request: HTTPRequest, startNanos: UInt64) async -> Result<Transfer.Addressing, HTTPTransferError> {
        // Other schemes are refused by `Transfer.start`; there is nothing to resolve for them.
        guard request.url.hasPrefix("http://") || request.url.hasPrefix("https://"),
              let target = TransferTarget(url: request.url) else { return .success(.unparsed) }
        guard let host = target.hostName else { return .success(.literal) }
        func elapsedUs() -> Int { Int((DispatchTime.now().uptimeNanoseconds - startNanos) / 1000) }
        switch await resolver.answer(for: host, waitingAtMost: .milliseconds(request.timeoutMs) - .microseconds(elapsedUs())) {
        case .addresses(let addresses):
            guard let pin = target.pin(addresses) else { return .failure(.dns("host did not resolve", latencyUs: elapsedUs())) }
            return .success(.pinned(pin))
        case .failed:
            return .failure(.dns("host did not resolve", latencyUs: elapsedUs()))
        case .pending:
            return .failure(.dns("host not resolved within the deadline", latencyUs: elapsedUs()))
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
            multi.act()
            inFlight -= multi.drainCompleted()
            if shuttingDown && inFlight == 0 { break }
            multi.wait(maxWaitMs: 1000)
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

/// Owns the `CURLM` handle, a pool of easy handles and, for the epoll loop, its epoll set.
///
/// `@unchecked Sendable`: every method but `wakeup` runs on the engine thread only, and so do the
/// libcurl callbacks (called from inside `curl_multi_socket_action`); `wakeup` calls
/// `curl_multi_wakeup` or writes to an eventfd, both safe from any thread.
final class CurlMulti: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer
    private let loop: CurlMultiEngine.Configuration.Loop
    private var idleEasyHandles: [UnsafeMutableRawPointer] = []
    private var epoll: Int32 = -1
    private var wakeFD: Int32 = -1
    /// Sockets libcurl asked to have watched (epoll loop).
    private var watched: Set<Int32> = []
    /// When libcurl wants `CURL_SOCKET_TIMEOUT`, as its timer callback said (epoll loop).
    private var timerDeadline: UInt64?
    private var readyFDs = [Int32](repeating: 0, count: Int(CCURL_EPOLL_BATCH))
    private var readyEvents = [UInt32](repeating: 0, count: Int(CCURL_EPOLL_BATCH))

    init(maxConnects: Int, loop: CurlMultiEngine.Configuration.Loop) {
        handle = curl_multi_init()
        _ = ccurl_multi_setopt_long(handle, CURLMOPT_MAXCONNECTS, maxConnects)
        if loop == .epoll {
            epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
            wakeFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        }
        // Without an epoll set or an eventfd, the poll loop still works: use it.
        guard loop == .epoll, epoll >= 0, wakeFD >= 0, ccurl_epoll_ctl(epoll, Int32(EPOLL_CTL_ADD), wakeFD, EPOLLIN.rawValue) == 0 else {
            self.loop = .poll
            return
        }
        self.loop = .epoll
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
            multi.timerDeadline = timeoutMs < 0 ? nil : DispatchTime.now().uptimeNanoseconds + UInt64(timeoutMs) * 1_000_000
            return 0
        }
    }

    deinit {
        for easy in idleEasyHandles { curl_easy_cleanup(easy) }
        curl_multi_cleanup(handle)
        if epoll >= 0 { close(epoll) }
        if wakeFD >= 0 { close(wakeFD) }
    }

    func wakeup() {
        if loop == .epoll { ccurl_eventfd_signal(wakeFD) } else { curl_multi_wakeup(handle) }
    }

    /// Takes back a handle whose transfer never started; it is reset when taken again.
    func recycle(_ easy: UnsafeMutableRawPointer) { idleEasyHandles.append(easy) }

    func takeEasyHandle() -> UnsafeMutableRawPointer? {
        if let easy = idleEasyHandles.popLast() {
            curl_easy_reset(easy)
            return easy
        }
        return curl_easy_init()
    }

    /// Lets libcurl work on what is ready now (new transfers, due timers).
    func act() {
        var running: Int32 = 0
        switch loop {
        case .poll:
            curl_multi_perform(handle, &running)
        case .epoll:
            if let deadline = timerDeadline, deadline <= DispatchTime.now().uptimeNanoseconds {
                timerDeadline = nil
                curl_multi_socket_action(handle, ccurl_socket_timeout, 0, &running)
            }
        }
    }

    /// Waits for sockets, a wake-up or libcurl's timer (at most `maxWaitMs`).
    func wait(maxWaitMs: Int32) {
        switch loop {
        case .poll:
            curl_multi_poll(handle, nil, 0, maxWaitMs, nil)
        case .epoll:
            waitAndDispatch(maxWaitMs: maxWaitMs)
        }
    }

    /// libcurl's socket callback: start, change or stop watching a socket.
    private func watch(socket: curl_socket_t, what: Int32) {
        if what == CURL_POLL_REMOVE {
            if watched.remove(socket) != nil { _ = ccurl_epoll_ctl(epoll, Int32(EPOLL_CTL_DEL), socket, 0) }
            return
        }
        var events: UInt32 = 0
        if what == CURL_POLL_IN || what == CURL_POLL_INOUT { events |= EPOLLIN.rawValue }
        if what == CURL_POLL_OUT || what == CURL_POLL_INOUT { events |= EPOLLOUT.rawValue }
        // epoll forgets a socket closed behind libcurl's back, and a reused descriptor may still be
        // there: an add that finds it modifies, a modify that misses adds, so no socket goes unwatched.
        if watched.insert(socket).inserted {
            if ccurl_epoll_ctl(epoll, Int32(EPOLL_CTL_ADD), socket, events) != 0, errno == EEXIST {
                _ = ccurl_epoll_ctl(epoll, Int32(EPOLL_CTL_MOD), socket, events)
            }
        } else if ccurl_epoll_ctl(epoll, Int32(EPOLL_CTL_MOD), socket, events) != 0, errno == ENOENT {
            _ = ccurl_epoll_ctl(epoll, Int32(EPOLL_CTL_ADD), socket, events)
        }
    }

    private func waitAndDispatch(maxWaitMs: Int32) {
        var waitMs = maxWaitMs
        if let deadline = timerDeadline {
            let now = DispatchTime.now().uptimeNanoseconds
            // Round up: waking a little late costs nothing, waking early spins.
            waitMs = deadline <= now ? 0 : min(maxWaitMs, Int32((deadline - now + 999_999) / 1_000_000))
        }
        let count = readyFDs.withUnsafeMutableBufferPointer { fds in
            readyEvents.withUnsafeMutableBufferPointer { events in
                ccurl_epoll_wait(epoll, fds.baseAddress, events.baseAddress, waitMs)
            }
        }
        var running: Int32 = 0
        for index in 0..<Int(max(0, count)) {
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
        act()
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
