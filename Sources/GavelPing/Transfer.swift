import CCurl
import Foundation
import Synchronization

/// One transfer's state while libcurl works on it.
///
/// `@unchecked Sendable`: created by the caller, then touched only by the engine thread until
/// `finish` delivers its result exactly once (to its own continuation, or to its batch).
final class Transfer: @unchecked Sendable {
    private let request: HTTPRequest
    private let addressing: Addressing
    private let maxResponseBytes: Int
    private let connectTimeoutMs: Int
    private var completion: Completion?
    private let startNanos: UInt64
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private var resolveList: UnsafeMutablePointer<curl_slist>?
    private var requestBody: UnsafeMutableBufferPointer<UInt8>?
    private(set) var responseBody: [UInt8] = []
    private(set) var exceededLimit = false

    /// How libcurl gets the peer's address; it never resolves a host name itself.
    enum Addressing: Sendable, Equatable {
        /// The URL names an address literal, which libcurl parses without a lookup.
        case literal
        /// A host name `HostResolver` resolved, pinned with this `CURLOPT_RESOLVE` entry.
        case pinned(String)
        /// The URL did not parse here; libcurl rejects it, and may look nothing up meanwhile.
        case unparsed
    }

    /// Who is waiting for the result.
    enum Completion {
        case single(CheckedContinuation<HTTPResult, Never>)
        /// One of a batch (a round's pings): the batch resumes its one waiter when all are in.
        case batch(TransferBatch, index: Int)
    }

    /// - Parameter startNanos: when `send` was called; the request's deadline counts from there.
    init(request: HTTPRequest, addressing: Addressing, startNanos: UInt64, maxResponseBytes: Int, connectTimeoutMs: Int,
         completion: Completion) {
        self.request = request
        self.addressing = addressing
        self.maxResponseBytes = maxResponseBytes
        self.connectTimeoutMs = connectTimeoutMs
        self.completion = completion
        self.startNanos = startNanos
    }

    deinit {
        if let headerList { curl_slist_free_all(headerList) }
        if let resolveList { curl_slist_free_all(resolveList) }
        requestBody?.deallocate()
    }

    private var elapsedUs: Int { Int((DispatchTime.now().uptimeNanoseconds - startNanos) / 1000) }

    /// Configures an easy handle and adds it to the multi handle; an error means it never started.
    func start(on multi: CurlMulti) -> HTTPTransferError? {
        guard request.url.hasPrefix("http://") || request.url.hasPrefix("https://") else {
            return .badURL("only http and https URLs are allowed", latencyUs: 0)
        }
        let remainingMs = request.timeoutMs - elapsedUs / 1000
        guard remainingMs > 0 else { return .notSent("deadline passed before the request was sent", latencyUs: elapsedUs) }
        guard let easy = multi.takeEasyHandle() else { return .other("curl_easy_init failed", latencyUs: 0) }

        let unmanaged = Unmanaged.passRetained(self)
        do throws(HTTPTransferError) {
            try configure(easy, remainingMs: remainingMs, context: unmanaged.toOpaque())
            let added = curl_multi_add_handle(multi.handle, easy)
            guard added == CURLM_OK else { throw .other(String(cString: curl_multi_strerror(added)), latencyUs: elapsedUs) }
        } catch {
            unmanaged.release()
            multi.recycle(easy)
            return error
        }
        return nil
    }

    private func configure(_ easy: UnsafeMutableRawPointer, remainingMs: Int, context: UnsafeMutableRawPointer) throws(HTTPTransferError) {
        try check(ccurl_easy_setopt_string(easy, CURLOPT_URL, request.url), "CURLOPT_URL")
        try check(ccurl_easy_setopt_string(easy, CURLOPT_PROTOCOLS_STR, "http,https"), "CURLOPT_PROTOCOLS_STR")
        try check(ccurl_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1), "CURLOPT_NOSIGNAL")
        try check(ccurl_easy_setopt_long(easy, CURLOPT_FOLLOWLOCATION, 0), "CURLOPT_FOLLOWLOCATION")
        try check(ccurl_easy_setopt_long(easy, CURLOPT_TCP_NODELAY, 1), "CURLOPT_TCP_NODELAY")
        if request.sendOnce {
            try check(ccurl_easy_setopt_long(easy, CURLOPT_FRESH_CONNECT, 1), "CURLOPT_FRESH_CONNECT")
        }
        try check(ccurl_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, remainingMs), "CURLOPT_TIMEOUT_MS")
        try check(ccurl_easy_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, min(remainingMs, connectTimeoutMs)), "CURLOPT_CONNECTTIMEOUT_MS")
        // Buyers are reached directly: an empty proxy turns off http_proxy/https_proxy/all_proxy, and an
        // empty no-proxy list keeps libcurl from reading no_proxy, so the environment plays no part.
        try check(ccurl_easy_setopt_string(easy, CURLOPT_PROXY, ""), "CURLOPT_PROXY")
        try check(ccurl_easy_setopt_string(easy, CURLOPT_NOPROXY, ""), "CURLOPT_NOPROXY")

        // A pinned name is a DNS-cache hit, so libcurl starts no resolver thread; the gate refuses any
        // other lookup of a name, whose clean-up could stall the engine thread.
        if case .pinned(let entry) = addressing {
            resolveList = curl_slist_append(nil, entry)
            try check(ccurl_easy_setopt_slist(easy, CURLOPT_RESOLVE, resolveList), "CURLOPT_RESOLVE")
        }
        try check(ccurl_easy_setopt_resolver_gate(easy, addressing == .literal ? 1 : 0), "CURLOPT_RESOLVER_START_FUNCTION")

        // An empty "Expect:" stops libcurl from waiting for 100-continue on larger bodies.
        var list = curl_slist_append(nil, "Expect:")
        for header in request.headers { list = curl_slist_append(list, "\(header.name): \(header.value)") }
        headerList = list
        try check(ccurl_easy_setopt_slist(easy, CURLOPT_HTTPHEADER, list), "CURLOPT_HTTPHEADER")

        if request.method == .post {
            let body = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: max(1, request.body.count))
            _ = body.initialize(from: request.body)
            requestBody = body
            try check(ccurl_easy_setopt_long(easy, CURLOPT_POST, 1), "CURLOPT_POST")
            try check(ccurl_easy_setopt_long(easy, CURLOPT_POSTFIELDSIZE, request.body.count), "CURLOPT_POSTFIELDSIZE")
            try check(ccurl_easy_setopt_pointer(easy, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(body.baseAddress)), "CURLOPT_POSTFIELDS")
        } else {
            try check(ccurl_easy_setopt_long(easy, CURLOPT_HTTPGET, 1), "CURLOPT_HTTPGET")
        }

        try check(ccurl_easy_setopt_pointer(easy, CURLOPT_PRIVATE, context), "CURLOPT_PRIVATE")
        try check(ccurl_easy_setopt_pointer(easy, CURLOPT_WRITEDATA, context), "CURLOPT_WRITEDATA")
        try check(ccurl_easy_setopt_write_function(easy) { data, size, count, userdata in
            guard let userdata, let data else { return 0 }
            let transfer = Unmanaged<Transfer>.fromOpaque(userdata).takeUnretainedValue()
            return transfer.receive(UnsafeRawBufferPointer(start: data, count: size * count))
        }, "CURLOPT_WRITEFUNCTION")
    }

    /// Every setopt result goes through here: an option libcurl refuses would send another request than asked.
    private func check(_ code: CURLcode, _ option: StaticString) throws(HTTPTransferError) {
        guard code == CURLE_OK else {
            throw .other("\(option): \(String(cString: curl_easy_strerror(code)))", latencyUs: elapsedUs)
        }
    }

    /// libcurl's write callback: returning less than given aborts the transfer.
    private func receive(_ chunk: UnsafeRawBufferPointer) -> Int {
        guard responseBody.count + chunk.count <= maxResponseBytes else {
            exceededLimit = true
            return 0
        }
        responseBody.append(contentsOf: chunk)
        return chunk.count
    }

    func complete(easy: UnsafeMutableRawPointer, code: CURLcode) {
        let latency = elapsedUs
        guard code == CURLE_OK else {
            finish(.failure(Transfer.error(for: code, exceededLimit: exceededLimit, maxBytes: maxResponseBytes, latencyUs: latency)))
            return
        }
        var status = 0
        _ = ccurl_easy_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
        var connects = 0
        _ = ccurl_easy_getinfo_long(easy, CURLINFO_NUM_CONNECTS, &connects)
        finish(.success(HTTPResponse(status: status, body: responseBody, latencyUs: latency, newConnections: connects)))
    }

    func finish(_ result: HTTPResult) {
        switch completion {
        case .single(let continuation)?: continuation.resume(returning: result)
        case .batch(let batch, let index)?: batch.deliver(result, at: index)
        case nil: break
        }
        completion = nil
    }

    /// Every libcurl result code goes through here into a typed error.
    static func error(for code: CURLcode, exceededLimit: Bool, maxBytes: Int, latencyUs: Int) -> HTTPTransferError {
        let detail = String(cString: curl_easy_strerror(code))
        switch code {
        case CURLE_OPERATION_TIMEDOUT: return .timeout(detail, latencyUs: latencyUs)
        case CURLE_COULDNT_CONNECT: return .refused(detail, latencyUs: latencyUs)
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY: return .dns(detail, latencyUs: latencyUs)
        case CURLE_WRITE_ERROR where exceededLimit: return .tooLarge("answer larger than \(maxBytes) bytes", latencyUs: latencyUs)
        case CURLE_FILESIZE_EXCEEDED: return .tooLarge(detail, latencyUs: latencyUs)
        case CURLE_RECV_ERROR, CURLE_SEND_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE: return .connectionLost(detail, latencyUs: latencyUs)
        case CURLE_UNSUPPORTED_PROTOCOL, CURLE_URL_MALFORMAT: return .badURL(detail, latencyUs: latencyUs)
        case CURLE_WEIRD_SERVER_REPLY, CURLE_HTTP2, CURLE_BAD_CONTENT_ENCODING: return .protocolError(detail, latencyUs: latencyUs)
        default: return .other(detail, latencyUs: latencyUs)
        }
    }
}

/// The transfers of one `send(all:)`: results are kept in request order, and the one waiter is
/// resumed when the last arrives. One continuation and one wake-up per round instead of one per
/// buyer: thread hops are most of what a round costs the exchange.
final class TransferBatch: Sendable {
    fileprivate struct State {
        var results: [HTTPResult?]
        var remaining: Int
        var continuation: CheckedContinuation<[HTTPResult], Never>?
    }

    private let state: Mutex<State>

    init(count: Int) {
        state = Mutex(State(results: Array(repeating: nil, count: count), remaining: count))
    }

    func deliver(_ result: HTTPResult, at index: Int) {
        let ready = state.withLock { state -> (CheckedContinuation<[HTTPResult], Never>, [HTTPResult])? in
            guard state.results[index] == nil else { return nil }
            state.results[index] = result
            state.remaining -= 1
            return State.take(&state)
        }
        if let (continuation, results) = ready { continuation.resume(returning: results) }
    }

    /// Waits for every result (returns at once when they are all in).
    func results() async -> [HTTPResult] {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> (CheckedContinuation<[HTTPResult], Never>, [HTTPResult])? in
                state.continuation = continuation
                return State.take(&state)
            }
            if let (continuation, results) = ready { continuation.resume(returning: results) }
        }
    }
}

extension TransferBatch.State {
    /// The waiter and the results, once both are there.
    fileprivate static func take(_ state: inout Self) -> (CheckedContinuation<[HTTPResult], Never>, [HTTPResult])? {
        guard state.remaining == 0, let continuation = state.continuation else { return nil }
        state.continuation = nil
        return (continuation, state.results.compactMap { $0 })
    }
}
