import Foundation
import NIOCore
import NIOHTTP1

/// Serves one connection: routes each request to its buyer and carries out the buyer's reply on an
/// event-loop timer, so a slow buyer costs a timer, never a thread.
///
/// `configureHTTPServerPipeline` puts an `HTTPServerPipelineHandler` in front of this handler; it
/// holds pipelined requests back until the current response has ended, so at most one request is in
/// flight here and answers go out in request order.
final class FleetHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    static let maxBodySize = 1 << 20
    static let dripInterval = TimeAmount.milliseconds(100)

    private let registry: BuyerRegistry
    private var request: HTTPRequestHead?
    private var body: ByteBuffer?
    private var bodyTooLarge = false
    /// The reply's pending timer (its delay or the next drip), cancelled if the connection goes away.
    private var timer: Scheduled<Void>?

    init(registry: BuyerRegistry) {
        self.registry = registry
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            request = head
            body = nil
            bodyTooLarge = false
        case .body(var chunk):
            if bodyTooLarge {
                return
            } else if (body?.readableBytes ?? 0) + chunk.readableBytes > Self.maxBodySize {
                bodyTooLarge = true
                body = nil
            } else if body == nil {
                body = chunk
            } else {
                body!.writeBuffer(&chunk)
            }
        case .end:
            guard let head = request.take() else { return }
            respond(to: head, body: body.take(), context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelTimer()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimer()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Parse errors were already answered with a 400 by the pipeline's error handler; a read error
        // means the client is gone. Either way this connection is done.
        context.close(promise: nil)
    }

    // MARK: - Deciding

    private func respond(to head: HTTPRequestHead, body: ByteBuffer?, context: ChannelHandlerContext) {
        let framing = Framing(version: head.version, keepAlive: head.isKeepAlive && !bodyTooLarge)
        if bodyTooLarge {
            return carryOut(.respond(.payloadTooLarge, body: ResponseBody.tooLarge), framing, context)
        }
        let reply: Reply
        switch Route(method: head.method, uri: head.uri) {
        case .ping(let id):
            guard let buyer = registry[id] else { return carryOut(Self.unknownBuyer, framing, context) }
            let data = body.map { Data($0.readableBytesView) } ?? Data()
            reply = buyer.answerPing(body: data, containsPII: PIIScanner.containsPII(data))
        case .post(let id):
            guard let buyer = registry[id] else { return carryOut(Self.unknownBuyer, framing, context) }
            reply = buyer.answerPost(body: body.map { Data($0.readableBytesView) } ?? Data())
        case .stats:
            reply = Reply(delay: .zero, action: .respond(.ok, body: statsBody()))
        case .notFound:
            reply = Reply(delay: .zero, action: .respond(.notFound, body: ResponseBody.notFound))
        }

        guard reply.delay > .zero else { return carryOut(reply.action, framing, context) }
        // A timer on this connection's own event loop; assumeIsolated() lets it capture the handler
        // and context without Sendable wrappers, since it fires on this same loop.
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: reply.delay) { [self] in
            timer = nil
            carryOut(reply.action, framing, context)
        }
    }

    private static let unknownBuyer = Reply.Action.respond(.notFound, body: ResponseBody.unknownBuyer)

    private func statsBody() -> ByteBuffer {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // Encoding plain counters cannot fail.
        let json = (try? encoder.encode(registry.allStats)) ?? Data("{}".utf8)
        return ByteBuffer(bytes: json)
    }

    // MARK: - Answering

    /// What the response's framing takes from its request.
    private struct Framing {
        var version: HTTPVersion
        var keepAlive: Bool
    }

    private func carryOut(_ action: Reply.Action, _ framing: Framing, _ context: ChannelHandlerContext) {
        switch action {
        case .respond(let status, let body):
            context.write(wrapOutboundOut(.head(responseHead(status, bodyLength: body?.readableBytes, framing))),
                          promise: nil)
            if let body {
                context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            }
            end(framing, context)
        case .drip(let body):
            context.writeAndFlush(wrapOutboundOut(.head(responseHead(.ok, bodyLength: body.readableBytes, framing))),
                                  promise: nil)
            drip(body, framing, context)
        case .redirect(let status, let location):
            var head = responseHead(status, bodyLength: nil, framing)
            head.headers.add(name: "location", value: location)
            head.headers.add(name: "content-length", value: "0")
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            end(framing, context)
        case .hang:
            break
        case .reset:
            context.closeWithReset()
        case .close:
            context.close(promise: nil)
        }
    }

    /// Writes the next byte of `remaining` after one drip interval, and ends the response after the last.
    private func drip(_ remaining: ByteBuffer, _ framing: Framing, _ context: ChannelHandlerContext) {
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: Self.dripInterval) { [self] in
            timer = nil
            var remaining = remaining
            guard let byte = remaining.readSlice(length: 1) else { return end(framing, context) }
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(byte))), promise: nil)
            if remaining.readableBytes == 0 {
                end(framing, context)
            } else {
                drip(remaining, framing, context)
            }
        }
    }

    private func end(_ framing: Framing, _ context: ChannelHandlerContext) {
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !framing.keepAlive {
            written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    private func responseHead(_ status: HTTPResponseStatus, bodyLength: Int?, _ framing: Framing) -> HTTPResponseHead {
        var headers = HTTPHeaders()
        if let bodyLength {
            headers.add(name: "content-type", value: "application/json")
            headers.add(name: "content-length", value: String(bodyLength))
        }
        if !framing.keepAlive {
            headers.add(name: "connection", value: "close")
        } else if framing.version == .http1_0 {
            headers.add(name: "connection", value: "keep-alive")
        }
        return HTTPResponseHead(version: framing.version, status: status, headers: headers)
    }

    private func cancelTimer() {
        timer?.cancel()
        timer = nil
    }
}
