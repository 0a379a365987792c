import CCurl
import Foundation

/// One transfer's state while libcurl works on it.
///
/// `@unchecked Sendable`: created by the caller, then touched only by the engine thread until
/// `finish` resumes the continuation exactly once.
final class Transfer: @unchecked Sendable {
    private let request: HTTPRequest
    private let maxResponseBytes: Int
    private let connectTimeoutMs: Int
    private var continuation: CheckedContinuation<HTTPResult, Never>?
    private let startNanos: UInt64
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private var requestBody: UnsafeMutableBufferPointer<UInt8>?
    private(set) var responseBody: [UInt8] = []
    private(set) var exceededLimit = false

    init(request: HTTPRequest, maxResponseBytes: Int, connectTimeoutMs: Int, continuation: CheckedContinuation<HTTPResult, Never>) {
        self.request = request
        self.maxResponseBytes = maxResponseBytes
        self.connectTimeoutMs = connectTimeoutMs
        self.continuation = continuation
        self.startNanos = DispatchTime.now().uptimeNanoseconds
    }

    deinit {
        if let headerList { curl_slist_free_all(headerList) }
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

        _ = ccurl_easy_setopt_string(easy, CURLOPT_URL, request.url)
        _ = ccurl_easy_setopt_string(easy, CURLOPT_PROTOCOLS_STR, "http,https")
        _ = ccurl_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1)
        _ = ccurl_easy_setopt_long(easy, CURLOPT_FOLLOWLOCATION, 0)
        _ = ccurl_easy_setopt_long(easy, CURLOPT_TCP_NODELAY, 1)
        _ = ccurl_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, remainingMs)
        _ = ccurl_easy_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, min(remainingMs, connectTimeoutMs))

        // An empty "Expect:" stops libcurl from waiting for 100-continue on larger bodies.
        var list = curl_slist_append(nil, "Expect:")
        for header in request.headers { list = curl_slist_append(list, "\(header.name): \(header.value)") }
        headerList = list
        _ = ccurl_easy_setopt_slist(easy, CURLOPT_HTTPHEADER, list)

        if request.method == .post {
            let body = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: max(1, request.body.count))
            _ = body.initialize(from: request.body)
            requestBody = body
            _ = ccurl_easy_setopt_long(easy, CURLOPT_POST, 1)
            _ = ccurl_easy_setopt_long(easy, CURLOPT_POSTFIELDSIZE, request.body.count)
            _ = ccurl_easy_setopt_pointer(easy, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(body.baseAddress))
        } else {
            _ = ccurl_easy_setopt_long(easy, CURLOPT_HTTPGET, 1)
        }

        let unmanaged = Unmanaged.passRetained(self)
        _ = ccurl_easy_setopt_pointer(easy, CURLOPT_PRIVATE, unmanaged.toOpaque())
        _ = ccurl_easy_setopt_pointer(easy, CURLOPT_WRITEDATA, unmanaged.toOpaque())
        _ = ccurl_easy_setopt_write_function(easy) { data, size, count, userdata in
            guard let userdata, let data else { return 0 }
            let transfer = Unmanaged<Transfer>.fromOpaque(userdata).takeUnretainedValue()
            return transfer.receive(UnsafeRawBufferPointer(start: data, count: size * count))
        }
        let added = curl_multi_add_handle(multi.handle, easy)
        guard added == CURLM_OK else {
            unmanaged.release()
            return .other(String(cString: curl_multi_strerror(added)), latencyUs: elapsedUs)
        }
        return nil
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
        continuation?.resume(returning: result)
        continuation = nil
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
