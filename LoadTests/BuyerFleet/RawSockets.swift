import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A socket call failed.
public struct SocketError: Error, CustomStringConvertible {
    public var call: String
    public var errno: Int32

    public var description: String {
        "\(call) failed: \(String(cString: strerror(errno)))"
    }
}

extension BuyerFleet {
    /// A ping URL on which nothing listens, so connecting to it is refused: binds a TCP socket to
    /// 127.0.0.1 port 0, notes the port the kernel chose, and closes the socket.
    ///
    /// Another process could take the port later, but on a test machine that is rare.
    public static func refusedURL() throws -> String {
        "http://127.0.0.1:\(try freeLoopbackPort())/refused/ping"
    }

    private static func freeLoopbackPort() throws -> UInt16 {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw SocketError(call: "socket", errno: errno) }
        defer { close(fd) }

        var address = sockaddr_in()
        #if canImport(Darwin)
        address.sin_len = UInt8(MemoryLayout<sockaddr_in>.size)
        #endif
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = in_addr_t(INADDR_LOOPBACK).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else { throw SocketError(call: "bind", errno: errno) }
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw SocketError(call: "getsockname", errno: errno) }
        return UInt16(bigEndian: address.sin_port)
    }
}

extension ChannelHandlerContext {
    /// Closes the connection with a TCP RST instead of a FIN: SO_LINGER on with a zero timeout
    /// makes close(2) discard unsent data and abort, which is what a crashing buyer looks like.
    func closeWithReset() {
        guard let options = channel as? any SocketOptionProvider else {
            close(promise: nil)
            return
        }
        options.setSoLinger(linger(l_onoff: 1, l_linger: 0)).assumeIsolated().whenComplete { _ in
            self.close(promise: nil)
        }
    }
}
