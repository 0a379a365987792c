import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// A peer that closed must not kill the test process with SIGPIPE.
#if canImport(Darwin)
private let noSignal: Int32 = 0  // Darwin has no MSG_NOSIGNAL; sockets get SO_NOSIGPIPE instead.
#else
private let noSignal = Int32(MSG_NOSIGNAL)
#endif

/// A blocking HTTP/1.1 client on a raw socket: the tests need to see exactly what reaches the wire
/// (resets, hangs, dribbled bytes, pipelining), which higher-level clients hide or retry.
final class RawHTTPConnection {
    struct Response {
        var status: Int
        /// Header names lowercased.
        var headers: [String: String]
        var body: [UInt8]

        var text: String { String(decoding: body, as: UTF8.self) }
        var json: [String: Any]? { try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] }
    }

    /// How a read ended.
    enum ReadOutcome: Equatable {
        case bytes(Int)
        case closed
        case timedOut
        case failed(errno: Int32)
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    private let fd: Int32
    private var buffered: [UInt8] = []

    /// Connects to 127.0.0.1:`port`; reads give up after `timeout`.
    init(port: Int, timeout: Duration = .seconds(5)) throws {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw Failure(description: "socket: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = in_addr_t(INADDR_LOOPBACK).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            let error = errno
            // Closed here and never stored, so deinit cannot close the number again after the
            // fleet's event loop has reused it for a connection of its own.
            close(fd)
            throw ConnectError(errno: error)
        }
        let (seconds, attoseconds) = timeout.components
        var limit = timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        #if canImport(Darwin)
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &on, socklen_t(MemoryLayout<Int32>.size))
        #endif
        self.fd = fd
    }

    /// Connects to the port of an `http://127.0.0.1:PORT/...` URL.
    convenience init(url: String, timeout: Duration = .seconds(5)) throws {
        guard let port = URL(string: url)?.port else { throw Failure(description: "no port in \(url)") }
        try self.init(port: port, timeout: timeout)
    }

    deinit {
        close(fd)
    }

    struct ConnectError: Error, Equatable {
        var errno: Int32
    }

    /// A request with a Content-Length body.
    static func request(
        _ method: String, _ path: String, body: String = "", headers: [String: String] = [:]
    ) -> String {
        var lines = ["\(method) \(path) HTTP/1.1", "Host: 127.0.0.1", "Content-Length: \(body.utf8.count)"]
        if !body.isEmpty {
            lines.append("Content-Type: application/json")
        }
        lines += headers.map { "\($0.key): \($0.value)" }
        return lines.joined(separator: "\r\n") + "\r\n\r\n" + body
    }

    func write(_ text: String) throws {
        try write(Array(text.utf8))
    }

    func write(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, noSignal) }
            guard sent > 0 else { throw Failure(description: "send: errno \(errno)") }
            offset += sent
        }
    }

    /// One read into the buffer.
    @discardableResult
    func read() -> ReadOutcome {
        var chunk = [UInt8](repeating: 0, count: 65_536)
        let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        switch count {
        case 0:
            return .closed
        case ..<0 where errno == EAGAIN || errno == EWOULDBLOCK:
            return .timedOut
        case ..<0:
            return .failed(errno: errno)
        default:
            buffered += chunk[..<count]
            return .bytes(count)
        }
    }

    /// Bytes received but not yet consumed by `readResponse`.
    var unconsumed: [UInt8] { buffered }

    /// Reads one whole response (head plus Content-Length body).
    func readResponse() throws -> Response {
        var headEnd: Int?
        while true {
            headEnd = buffered.indices.dropLast(3).first {
                buffered[$0] == 13 && buffered[$0 + 1] == 10 && buffered[$0 + 2] == 13 && buffered[$0 + 3] == 10
            }
            if headEnd != nil { break }
            try readMore()
        }
        let head = String(decoding: buffered[..<headEnd!], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = head[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else {
            throw Failure(description: "bad status line: \(head[0])")
        }
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let length = Int(headers["content-length"] ?? "0") ?? 0
        let bodyStart = headEnd! + 4
        while buffered.count < bodyStart + length {
            try readMore()
        }
        let body = Array(buffered[bodyStart..<bodyStart + length])
        buffered.removeFirst(bodyStart + length)
        return Response(status: status, headers: headers, body: body)
    }

    private func readMore() throws {
        let outcome = read()
        guard case .bytes = outcome else { throw Failure(description: "connection ended mid-response: \(outcome)") }
    }
}

/// Runs blocking socket work on a Dispatch thread, keeping it off the Swift concurrency pool.
func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            continuation.resume(with: Result { try work() })
        }
    }
}

/// Sends one request on a fresh connection and reads the response.
func exchange(
    port: Int, _ method: String, _ path: String, body: String = "", headers: [String: String] = [:]
) async throws -> RawHTTPConnection.Response {
    try await blocking {
        let connection = try RawHTTPConnection(port: port)
        try connection.write(RawHTTPConnection.request(method, path, body: body, headers: headers))
        return try connection.readResponse()
    }
}
