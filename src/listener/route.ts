/**
 * listener/: the port and the dispatch. Imports: services/, http/, wire/, observe/, runtime/.
 *
 * Where each request goes, the whole order in one place.
 *
 * A bare HTTP/2 stream (before node:http2's compat layer, runtime.ts streamsFirst), native gRPC only:
 *   1. a unary etcd RPC → fast/unary.ts;  2. Watch or LeaseKeepAlive → fast/bidi.ts;  else the compat layer.
 * A compat request (HTTP/1.1, HTTP/2 streams left above), after CORS (cors.ts):
 *   1. a unary etcd RPC in gRPC, gRPC-Web (binary) or Connect, uncompressed → fast/unary.ts;
 *   2. Watch or LeaseKeepAlive in native gRPC → fast/bidi.ts;
 *   3. any other of our RPCs → connect-es's handlers (connect-adapter.ts);
 *   4. a request in an RPC protocol naming no RPC we serve → Unimplemented in that protocol;
 *   5. everything else → the HTTP app (health, metrics, ui, JSON gateway, 404).
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type * as http2 from "node:http2";
import type { DescMessage } from "@bufbuild/protobuf";
import type { Logger } from "../observe/log.js";
import type { Metrics } from "../observe/metrics.js";
import type { BidiMethod, Routes, UnaryMethod } from "../services/registry.js";
import type { StreamTaker } from "../runtime/runtime.js";
import { grpcStatus, respondTrailersOnly } from "../wire/status.js";
import { connectHandlers } from "./connect-adapter.js";
import { withCors } from "./cors.js";
import { grpcBidi } from "./fast/bidi.js";
import { connectError } from "./fast/connect.js";
import type { Req, Res } from "./fast/exchange.js";
import { fastGrpcStream, fastUnary } from "./fast/unary.js";
import { protocolOf } from "./protocol.js";
import type { RequestHandler } from "./server.js";

export interface DispatchOptions {
  /** Unary implementations by request path (services/registry.ts). */
  unary: ReadonlyMap<string, UnaryMethod>;
  /** The bidi RPCs the fast path serves in native gRPC. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  bidi: readonly BidiMethod<any, any>[];
  /** Every service, for connect-es's handlers. */
  routes: Routes;
  /** The HTTP app as a Node request handler. */
  app: RequestHandler;
  /** --max-send-bytes. */
  readMaxBytes: number;
  corsAllowedOrigins: readonly string[];
  metrics: Metrics;
  log: Logger;
}

export interface Dispatch {
  handler: RequestHandler;
  streams: StreamTaker;
}

export function dispatch(o: DispatchOptions): Dispatch {
  const unaryOptions = { methods: o.unary, readMaxBytes: o.readMaxBytes, metrics: o.metrics, log: o.log };
  const unary = fastUnary(unaryOptions);
  const unaryStream = fastGrpcStream(unaryOptions);
  const bidi = o.bidi.map((m: BidiMethod<DescMessage, DescMessage>) => grpcBidi({ ...m, readMaxBytes: o.readMaxBytes, metrics: o.metrics }));
  const connect = connectHandlers({ routes: o.routes, readMaxBytes: o.readMaxBytes, metrics: o.metrics, log: o.log });
  const streams: StreamTaker = (stream, headers) => unaryStream(stream, headers) || bidi.some((b) => b.stream(stream, headers));
  const requests: RequestHandler = (req, res) => {
    if (unary(req, res) || bidi.some((b) => b.compat(req, res)) || connect(req, res)) return;
    if (speaksRpc(req)) return unimplemented(req, res);
    o.app(req, res);
  };
  const handler = withCors(o.corsAllowedOrigins, requests);
  if (!o.log.isLevelEnabled("debug")) return { handler, streams };
  return { handler: logged(handler, o.log), streams: loggedStreams(streams, o.log) };
}

/** An RPC path: `/package.Service/Method`. */
const RPC_PATH = /^\/[A-Za-z_][\w]*(\.[A-Za-z_]\w*)+\/[A-Za-z_]\w*$/;

/** A request in an RPC protocol: it gets Unimplemented in that protocol, not the app's 404 page. */
function speaksRpc(req: Req): boolean {
  const contentType = String(req.headers["content-type"] ?? "");
  if (contentType.startsWith("application/grpc") || contentType.startsWith("application/connect+") || req.headers["connect-protocol-version"] !== undefined) return true;
  // Connect unary without its version header (it is optional): POST of proto or JSON to an RPC path.
  const path = (req.url ?? "").split("?", 1)[0]!;
  return req.method === "POST" && RPC_PATH.test(path) && /^application\/(json|proto)\b/.test(contentType);
}

function unimplemented(req: Req, res: Res): void {
  const path = (req.url ?? "").split("?", 1)[0];
  const err = new ConnectError(`unknown service or method ${path}`, Code.Unimplemented);
  const contentType = String(req.headers["content-type"] ?? "");
  // Drain the request body so that HTTP/1.1 keep-alive connections stay usable.
  req.resume();
  if (protocolOf(contentType) === "connect") return connectError(res, err);
  // gRPC and gRPC-Web: trailers-only, the status in the one HEADERS frame (wire.md §3; gRPC-Web allows it).
  const type = contentType.startsWith("application/grpc-web") ? contentType : "application/grpc";
  // HTTP/2: END_STREAM on that HEADERS frame itself, or gRPC clients wait for trailers; stream.respond
  // bypasses the compat layer, so what was set with setHeader (CORS, cors.ts) is carried over.
  if ("stream" in res) return respondTrailersOnly(res.stream, type, err, res.getHeaders());
  res.writeHead(200, { "content-type": type, ...grpcStatus(err) });
  res.end();
}

/** --debug: one line per request when its response is done. */
function logged(next: RequestHandler, log: Logger): RequestHandler {
  return (req, res) => {
    const started = performance.now();
    res.once("close", () => {
      log.debug({ method: req.method, path: req.url, protocol: protocolOf(req.headers["content-type"]), http: req.httpVersion, status: res.statusCode, ms: Math.round((performance.now() - started) * 100) / 100 }, "request");
    });
    next(req, res);
  };
}

function loggedStreams(next: StreamTaker, log: Logger): StreamTaker {
  return (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    const started = performance.now();
    const taken = next(stream, headers);
    if (taken) {
      stream.once("close", () => {
        log.debug({ method: headers[":method"], path: headers[":path"], protocol: "grpc", http: "2.0", rstCode: stream.rstCode, ms: Math.round((performance.now() - started) * 100) / 100 }, "request");
      });
    }
    return taken;
  };
}
