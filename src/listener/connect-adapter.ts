/**
 * connect-es's handlers on our listener: every RPC the fast paths leave (streams in gRPC-Web and Connect,
 * compressed messages, Connect GET, gRPC-Web text, the Health and Edge services). connect-node's own
 * adapter is replaced by this one for what it cannot be told to do:
 * - grpc-message as etcd writes it (wire/status.ts): connect-es percent-encodes it with
 *   encodeURIComponent, which grpc-js clients do not fully decode;
 * - a deadline held at the longest timer (connect-es would fire a 30-day grpc-timeout at once);
 * - gRPC-Web text mode (grpc-web-text.ts);
 * - a handler failure logged through our logger, and no throw out of the request callback.
 */
import { Code, ConnectError, createConnectRouter } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip, universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type { UniversalServerRequest, UniversalServerResponse } from "@connectrpc/connect/protocol";
import type { Logger } from "../observe/log.js";
import type { Metrics } from "../observe/metrics.js";
import { metricsInterceptor } from "../observe/rpc-metrics.js";
import type { Routes } from "../services/registry.js";
import { FrameDecoder, grpcFrame, TRAILER_FLAG } from "../wire/frame.js";
import { reencodeGrpcMessage } from "../wire/status.js";
import { grpcTimeout, MAX_TIMER_MS } from "../wire/timeout.js";
import { undecodableIsInvalidArgument } from "./decode-errors.js";
import { fairnessInterceptor, peerValues } from "./fairness.js";
import { JSON_READ } from "./fast/connect.js";
import { connectError } from "./fast/connect.js";
import type { Req, Res } from "./fast/exchange.js";
import { binaryTypeOfText, decodeBase64, encodeBase64 } from "./grpc-web-text.js";
import { protocolOf } from "./protocol.js";

export interface ConnectAdapterOptions {
  routes: Routes;
  /** --max-send-bytes: one limit for what a client may send, the same that bounds what we send to etcd. */
  readMaxBytes: number;
  metrics: Metrics;
  log: Logger;
}

/** Serves `req` if it names one of our RPCs (true), or leaves it (false). */
export function connectHandlers(o: ConnectAdapterOptions): (req: Req, res: Res) => boolean {
  const router = createConnectRouter({
    interceptors: [metricsInterceptor(o.metrics, protocolOf), fairnessInterceptor],
    // An undecodable protobuf body is the client's InvalidArgument, not our Internal (decode-errors.ts).
    requestGate: undecodableIsInvalidArgument,
    readMaxBytes: o.readMaxBytes,
    // Unknown JSON fields are ignored, as etcd's gateway does, so newer clients keep working.
    jsonOptions: JSON_READ,
    acceptCompression: [compressionGzip, compressionBrotli],
  });
  o.routes(router);
  const handlers = new Map(router.handlers.map((h) => [h.requestPath, h]));
  return (req, res) => {
    const handler = handlers.get((req.url ?? "").split("?", 2)[0]!);
    if (!handler) return false;
    const textType = binaryTypeOfText(req.headers["content-type"]);
    let uReq: UniversalServerRequest;
    try {
      holdDeadline(req);
      if (textType) req.headers["content-type"] = textType;
      uReq = universalRequestFromNodeRequest(req, res, undefined, peerValues(req));
    } catch (err) {
      // An HTTP/1.1 request without a Host header cannot be given a URL: the client's error.
      connectError(res, ConnectError.from(err, Code.InvalidArgument));
      return true;
    }
    if (textType) uReq = { ...uReq, body: decodeBase64(uReq.body as AsyncIterable<Uint8Array>) };
    handler(uReq)
      .then((uRes) => universalResponseToNodeResponse(asEtcdWrites(uRes, textType !== undefined), res))
      .catch((reason: unknown) => {
        if (ConnectError.from(reason).code === Code.Aborted) return;
        o.log.warn({ err: reason, rpc: handler.requestPath }, "rpc handler failed");
      });
    return true;
  };
}

/** A grpc-timeout beyond the longest timer is held at it, as the fast paths and the gateway do. */
function holdDeadline(req: Req): void {
  const t = grpcTimeout(req.headers["grpc-timeout"]);
  if (typeof t === "number" && t >= MAX_TIMER_MS) req.headers["grpc-timeout"] = `${Math.floor(MAX_TIMER_MS / 1000)}S`;
}

/** The handlers' answer with grpc-message re-encoded as etcd's, and in base64 for gRPC-Web text. */
function asEtcdWrites(uRes: UniversalServerResponse, text: boolean): UniversalServerResponse {
  const out = { ...uRes };
  if (out.header) reencodeStatus(out.header);
  if (out.trailer) reencodeStatus(out.trailer);
  const contentType = out.header?.get("content-type") ?? "";
  if (out.body && contentType.startsWith("application/grpc-web")) {
    out.body = reencodeTrailerFrames(out.body);
    if (text) {
      out.body = encodeBase64(out.body);
      out.header?.set("content-type", contentType.replace("application/grpc-web", "application/grpc-web-text"));
    }
  }
  return out;
}

function reencodeStatus(h: Headers): void {
  const message = h.get("grpc-message");
  if (message !== null) h.set("grpc-message", reencodeGrpcMessage(message));
}

/**
 * gRPC-Web carries the status in a trailer frame of the body: each frame is passed on whole, the trailer
 * frame with its grpc-message re-encoded. Frames are bounded by the same limit as a message.
 */
async function* reencodeTrailerFrames(body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  const frames = new FrameDecoder(2 ** 32 - 1);
  for await (const chunk of body) {
    for (const f of frames.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))) {
      if (f.flag !== TRAILER_FLAG) {
        yield grpcFrame(f.bytes, f.flag);
        continue;
      }
      const lines = f.bytes.toString("latin1").replace(/^grpc-message:[ \t]*([^\r\n]*)/im, (_, m: string) => `grpc-message: ${reencodeGrpcMessage(m)}`);
      yield grpcFrame(Buffer.from(lines, "latin1"), TRAILER_FLAG);
    }
  }
}
