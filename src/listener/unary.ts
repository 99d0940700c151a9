/**
 * The lean path for the hottest traffic: unary etcd RPCs in native gRPC over HTTP/2 (etcdctl, clientv3,
 * every gRPC client), and the same calls in gRPC-Web and Connect (browsers, edge runtimes) over HTTP/1.1
 * and HTTP/2. It calls the very same service implementations as the Connect handlers, and skips only
 * connect-es's generic server machinery, which the benchmark measured at about ten times the CPU of the
 * handler itself per call (async-iterable plumbing, linked AbortControllers whose aborts build a
 * DOMException each, header conversions). Anything it does not fully handle goes to the Connect handlers
 * untouched: compressed messages, gRPC-Web text and JSON, Connect GET, streams, other services.
 *
 * What each protocol puts on the wire is in unary-wire.ts. A deadline (grpc-timeout, connect-timeout-ms)
 * is honoured and a client that goes away (RST_STREAM, a closed HTTP/1.1 connection) cancels the call.
 */
import type { Message } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type * as http from "node:http";
import type * as http2 from "node:http2";
import type { Metrics } from "../observe/metrics.js";
import type { UnaryMethod } from "../services/unary-methods.js";
import { messageTooLarge } from "../upstream/grpc-frame.js";
import { callerHeaders, type CallerContext } from "../upstream/upstream.js";
import { grpcStreamError, grpcStreamOk, wireOf, type UnaryWire, type WireProtocol } from "./unary-wire.js";

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;

export interface UnaryOptions {
  methods: Map<string, UnaryMethod>;
  /** Largest request message accepted (--max-send-bytes); ResourceExhausted beyond, as connect-es says it. */
  readMaxBytes: number;
  metrics: Metrics;
}

/**
 * One call's two ends, whichever objects carry them: the compat request/response of node:http and
 * node:http2, or a bare HTTP/2 stream (leanGrpcStream).
 */
interface Exchange {
  headers: http.IncomingHttpHeaders;
  /** The request body: 'data' chunks, then 'end'. */
  body: NodeJS.EventEmitter;
  /** Emits 'close' when the client has gone (or the exchange is over). */
  closing: NodeJS.EventEmitter;
  gone(): boolean;
  answered(): boolean;
  ok(output: UnaryMethod["output"], message: Message): void;
  error(err: ConnectError): void;
}

/** Returns a handler that serves the request and says true, or says false and leaves it alone. */
export function leanUnary(o: UnaryOptions): (req: Req, res: Res) => boolean {
  return (req, res) => {
    const m = o.methods.get(req.url ?? "");
    if (!m) return false;
    const wire = wireOf(req.method, req.httpVersionMajor, req.headers);
    if (!wire) return false;
    serve({
      headers: req.headers,
      body: req,
      // HTTP/2: the stream closes (RST_STREAM); HTTP/1.1: the response closes before it was written.
      closing: "stream" in res ? res.stream : res,
      gone: () => ("stream" in res ? res.stream.destroyed : res.destroyed),
      answered: () => res.headersSent,
      ok: (output, message) => wire.ok(res, output, message),
      error: (err) => wire.error(res, err),
    }, m, wire, o);
    return true;
  };
}

/**
 * The same for a bare HTTP/2 stream, before node:http2's compat layer has built a request and a response
 * for it (runtime.ts streamsFirst): native gRPC only, the traffic of etcd's own clients. Requests from a
 * browser (an Origin header: CORS headers are the compat path's) and every other protocol say false.
 */
export function leanGrpcStream(o: UnaryOptions): (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => boolean {
  return (stream, headers) => {
    const path = headers[":path"];
    const m = path === undefined ? undefined : o.methods.get(path);
    if (!m || headers.origin !== undefined) return false;
    const wire = wireOf(headers[":method"], 2, headers);
    if (wire?.protocol !== "grpc") return false;
    stream.on("error", () => {});
    serve({
      headers,
      body: stream,
      closing: stream,
      gone: () => stream.destroyed,
      answered: () => stream.headersSent,
      ok: (output, message) => grpcStreamOk(stream, output, message),
      error: (err) => grpcStreamError(stream, err),
    }, m, wire, o);
    return true;
  };
}

function serve(x: Exchange, m: UnaryMethod, wire: UnaryWire, o: UnaryOptions): void {
  const series = seriesOf(m, wire.protocol, o.metrics);
  const started = performance.now();
  series.started.inc();
  // Made on first use: a cache hit never looks at the signal, and an AbortController per call is not free.
  let abort: AbortController | undefined;
  let finished = false;
  const timeout = wire.timeoutMs(x.headers);
  const timeoutMs = typeof timeout === "number" ? timeout : undefined;
  const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
  const timer = timeoutMs === undefined ? undefined : setTimeout(() => fail(new ConnectError("the operation timed out", Code.DeadlineExceeded)), timeoutMs);
  // A client that goes away cancels the call; an explicit reason avoids building a DOMException.
  const onClose = () => {
    if (!finished) fail(new ConnectError("context canceled", Code.Canceled), false);
  };
  x.closing.once("close", onClose);

  const ctx: CallerContext = {
    requestHeader: callerHeaders(x.headers),
    get signal() {
      return (abort ??= new AbortController()).signal;
    },
    timeoutMs: () => (deadline === undefined ? undefined : deadline - Date.now()),
  };

  // The request: one message, read whole (bounded by readMaxBytes). After a failure the rest of the body
  // is read and dropped, so that an HTTP/1.1 connection stays usable for the next request.
  const chunks: Buffer[] = [];
  let size = 0;
  const limit = o.readMaxBytes + wire.framing;
  x.body.on("data", (chunk: Buffer) => {
    if (finished) return;
    size += chunk.length;
    if (size > limit) {
      fail(messageTooLarge(size - wire.framing, o.readMaxBytes));
      return;
    }
    chunks.push(chunk);
  });
  x.body.on("end", () => {
    if (finished) return;
    if (timeout instanceof ConnectError) return fail(timeout);
    let input: Message;
    try {
      input = wire.parse(m.input, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    } catch (err) {
      fail(ConnectError.from(err, Code.InvalidArgument));
      return;
    }
    m.impl(input, ctx).then(succeed, (err: unknown) => fail(ConnectError.from(err)));
  });

  function cleanup(): void {
    finished = true;
    clearTimeout(timer);
    x.closing.off("close", onClose);
  }

  function succeed(output: Message): void {
    if (finished) return;
    cleanup();
    if (x.gone()) return;
    x.ok(m.output, output);
    series.seconds.observe((performance.now() - started) / 1000);
    series.ok.inc();
  }

  function fail(err: ConnectError, answer = true): void {
    if (finished) return;
    cleanup();
    abort?.abort(err);
    series.seconds.observe((performance.now() - started) / 1000);
    o.metrics.handled.inc({ ...m.labels, protocol: wire.protocol, grpc_code: Code[err.code] });
    if (!answer || x.gone() || x.answered()) return;
    x.error(err);
  }
}

/**
 * The metric series of one method in one protocol, looked up once: label hashing on every call was a
 * measurable share of a cache hit's cost.
 */
const seriesCache = new WeakMap<UnaryMethod, Map<WireProtocol, Series>>();
type Series = { started: Counter; ok: Counter; seconds: Histogram };
type Counter = { inc(): void };
type Histogram = { observe(v: number): void };

function seriesOf(m: UnaryMethod, protocol: WireProtocol, metrics: Metrics): Series {
  let byProtocol = seriesCache.get(m);
  if (!byProtocol) seriesCache.set(m, (byProtocol = new Map()));
  let s = byProtocol.get(protocol);
  if (!s) {
    const labels = { ...m.labels, protocol };
    s = {
      started: metrics.started.labels(labels),
      ok: metrics.handled.labels({ ...labels, grpc_code: "OK" }),
      seconds: metrics.handlingSeconds.labels(labels),
    };
    byProtocol.set(protocol, s);
  }
  return s;
}
