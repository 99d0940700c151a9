/**
 * listener/fast/: the measured hot paths, one file per protocol. Imports: as listener/.
 *
 * The fast path for the hottest traffic: unary etcd RPCs in native gRPC over HTTP/2 (etcdctl, clientv3,
 * every gRPC client), and the same calls in gRPC-Web and Connect (browsers, edge runtimes) over HTTP/1.1
 * and HTTP/2. It calls the very same service implementations as the Connect handlers, through the
 * services' one invoke, and skips only connect-es's generic server machinery, which the benchmark measured
 * at about ten times the CPU of the handler itself per call. Anything it does not fully handle goes on
 * to the Connect handlers untouched (route.ts).
 *
 * Every listener callback here is guarded: a client's bytes or a throwing implementation end the call
 * with an error answer, never the process.
 */
import type { Message } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type * as http from "node:http";
import * as http2 from "node:http2";
import type { Logger } from "../../observe/log.js";
import type { Metrics } from "../../observe/metrics.js";
import { seriesCache } from "../../observe/rpc-metrics.js";
import { UnaryCall } from "../../services/invoke.js";
import type { UnaryMethod } from "../../services/registry.js";
import { callerHeaders } from "../../wire/caller.js";
import { messageTooLarge } from "../../wire/errors.js";
import { parseContentType as parseConnectType } from "@connectrpc/connect/protocol-connect";
import { parseContentType as parseGrpcWebType } from "@connectrpc/connect/protocol-grpc-web";
import { isIdentity } from "../protocol.js";
import { CONNECT_JSON, CONNECT_PROTO } from "./connect.js";
import { awaitBody, bodyDone } from "./body-idle.js";
import { compatExchange, streamExchange, type Exchange, type Req, type Res } from "./exchange.js";
import { GRPC, isFastGrpc } from "./grpc.js";
import { GRPC_WEB } from "./grpc-web.js";
import type { UnaryWire } from "./wire.js";

const { NGHTTP2_NO_ERROR } = http2.constants;

export interface UnaryOptions {
  methods: ReadonlyMap<string, UnaryMethod>;
  /** Largest request message accepted (--max-send-bytes); ResourceExhausted beyond, as connect-es says it. */
  readMaxBytes: number;
  metrics: Metrics;
  /** Where a call that failed on our side (Internal, Unknown) is reported. */
  log: Logger;
}

/** The wire of a request this path serves, or undefined (the Connect handlers take it). */
export function wireOf(method: string | undefined, httpVersionMajor: number, headers: http.IncomingHttpHeaders): UnaryWire | undefined {
  if (method !== "POST") return undefined;
  const contentType = headers["content-type"];
  if (contentType === undefined) return undefined;
  if (contentType.startsWith("application/grpc-web")) {
    const type = parseGrpcWebType(contentType);
    if (!type || type.text || !type.binary || !isIdentity(headers["grpc-encoding"])) return undefined;
    return GRPC_WEB;
  }
  // Native gRPC needs HTTP/2 trailers; over HTTP/1.1 the Connect handlers give the proper refusal.
  if (contentType.startsWith("application/grpc")) return isFastGrpc(method, httpVersionMajor, headers) ? GRPC : undefined;
  const type = parseConnectType(contentType);
  if (!type || type.stream || !isIdentity(headers["content-encoding"])) return undefined;
  return type.binary ? CONNECT_PROTO : CONNECT_JSON;
}

/** A compat request/response: serves it and says true, or says false and leaves it alone. */
export function fastUnary(o: UnaryOptions): (req: Req, res: Res) => boolean {
  const series = seriesCache(o.metrics);
  return (req, res) => {
    const m = o.methods.get(req.url ?? "");
    if (!m) return false;
    const wire = wireOf(req.method, req.httpVersionMajor, req.headers);
    if (!wire) return false;
    serve(compatExchange(req, res), m, wire, o, series);
    return true;
  };
}

/**
 * The same for a bare HTTP/2 stream, before node:http2's compat layer has built a request and a response
 * for it: native gRPC only, the traffic of etcd's own clients. Requests from a browser (an Origin header:
 * CORS headers are the compat path's) and every other protocol say false.
 */
export function fastGrpcStream(o: UnaryOptions): (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => boolean {
  const series = seriesCache(o.metrics);
  return (stream, headers) => {
    const path = headers[":path"];
    const m = path === undefined ? undefined : o.methods.get(path);
    if (!m || headers.origin !== undefined || !isFastGrpc(headers[":method"], 2, headers)) return false;
    serve(streamExchange(stream, headers), m, GRPC, o, series);
    return true;
  };
}

function serve(x: Exchange, m: UnaryMethod, wire: UnaryWire, o: UnaryOptions, seriesOf: ReturnType<typeof seriesCache>): void {
  const s = seriesOf(m, m.labels, wire.protocol);
  const started = performance.now();
  s.started.inc();
  const timeout = wire.timeout(x.headers);
  const call = new UnaryCall(callerHeaders(x.headers), typeof timeout === "number" ? timeout : undefined, (err, output) => {
    x.closing.off("close", onClose);
    bodyDone(body);
    s.seconds.observe((performance.now() - started) / 1000);
    if (err) {
      s.failed(err.code);
      if (err.code === Code.Internal || err.code === Code.Unknown) o.log.warn({ err, rpc: m.labels.grpc_method, cause: err.cause }, "rpc failed");
      if (!x.gone() && !x.answered()) wire.error(x, err);
      // Answered before the client finished its request: end the stream's request side too, as grpc-go
      // does (RST_STREAM NO_ERROR after the status), so a stuck body does not keep the stream open.
      if (!ended) endRequestSide(x);
      return;
    }
    if (x.gone()) return;
    wire.ok(x, m.output, output!);
    s.ok.inc();
  });
  // --fairness: the connection names the caller's flow (its certificate or address).
  if (UnaryCall.charge) call.peer = x.stream ? x.stream.session?.socket : x.res && ("stream" in x.res ? x.res.stream.session?.socket : x.res.socket ?? undefined);
  // A client that goes away cancels the call (and, through its signal, the upstream work).
  const onClose = () => call.cancel();
  x.closing.once("close", onClose);

  // The request: one message, read whole (bounded by readMaxBytes). After a failure the rest of the body
  // is read and dropped, so that an HTTP/1.1 connection stays usable for the next request.
  const chunks: Buffer[] = [];
  let size = 0;
  let ended = false;
  const body = awaitBody((err) => call.fail(err));
  const limit = o.readMaxBytes + wire.framing;
  x.body.on("data", (chunk: Buffer) => {
    if (call.isFinished) return;
    body.last = Date.now();
    size += chunk.length;
    if (size > limit) return call.fail(messageTooLarge(size - wire.framing, o.readMaxBytes));
    chunks.push(chunk);
  });
  x.body.on("end", () => {
    ended = true;
    bodyDone(body);
    if (call.isFinished) return;
    if (timeout instanceof ConnectError) return call.fail(timeout);
    let input: Message;
    try {
      input = wire.parse(m.input, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    } catch (err) {
      return call.fail(ConnectError.from(err, Code.InvalidArgument));
    }
    call.run(m, input, o.readMaxBytes, size - wire.framing);
  });
}

/** HTTP/2 only: an HTTP/1.1 request left unfinished ends with its connection. */
function endRequestSide(x: Exchange): void {
  const stream = x.stream ?? (x.res && "stream" in x.res ? x.res.stream : undefined);
  if (!stream || stream.closed || stream.destroyed) return;
  // After the answer is flushed: a reset sent earlier could overtake the trailers.
  const close = () => { if (!stream.closed && !stream.destroyed) stream.close(NGHTTP2_NO_ERROR); };
  if (stream.writableFinished) setImmediate(close);
  else stream.once("finish", () => setImmediate(close));
}
