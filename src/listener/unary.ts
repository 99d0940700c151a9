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
import { CALLER_METADATA, type CallerContext } from "../upstream/upstream.js";
import { wireOf, type UnaryWire, type WireProtocol } from "./unary-wire.js";

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;
export interface UnaryOptions {
  methods: Map<string, UnaryMethod>;
  /** Largest request message accepted (--max-send-bytes); ResourceExhausted beyond, as connect-es says it. */
  readMaxBytes: number;
  metrics: Metrics;
}

/** Returns a handler that serves the request and says true, or says false and leaves it alone. */
export function leanUnary(o: UnaryOptions): (req: Req, res: Res) => boolean {
  return (req, res) => {
    const m = o.methods.get(req.url ?? "");
    if (!m) return false;
    const wire = wireOf(req);
    if (!wire) return false;
    serve(req, res, m, wire, o);
    return true;
  };
}

function serve(req: Req, res: Res, m: UnaryMethod, wire: UnaryWire, o: UnaryOptions): void {
  const series = seriesOf(m, wire.protocol, o.metrics);
  const started = performance.now();
  series.started.inc();
  // Made on first use: a cache hit never looks at the signal, and an AbortController per call is not free.
  let abort: AbortController | undefined;
  let finished = false;
  const timeout = wire.timeoutMs(req);
  const timeoutMs = typeof timeout === "number" ? timeout : undefined;
  const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
  const timer = timeoutMs === undefined ? undefined : setTimeout(() => fail(new ConnectError("the operation timed out", Code.DeadlineExceeded)), timeoutMs);
  // A client that goes away cancels the call; an explicit reason avoids building a DOMException.
  // HTTP/2: the stream closes (RST_STREAM); HTTP/1.1: the response closes before it was written.
  const closing = "stream" in res ? res.stream : res;
  const onClose = () => {
    if (!finished) fail(new ConnectError("context canceled", Code.Canceled), false);
  };
  closing.once("close", onClose);

  const header = new Headers();
  for (const name of CALLER_METADATA) {
    const v = req.headers[name];
    if (typeof v === "string") header.set(name, v);
  }
  const ctx: CallerContext = {
    requestHeader: header,
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
  req.on("data", (chunk: Buffer) => {
    if (finished) return;
    size += chunk.length;
    if (size > limit) {
      fail(new ConnectError(`message size ${size - wire.framing} is larger than configured readMaxBytes ${o.readMaxBytes}`, Code.ResourceExhausted));
      return;
    }
    chunks.push(chunk);
  });
  req.on("end", () => {
    if (finished) return;
    if (timeout instanceof ConnectError) return fail(timeout);
    let input: Message;
    try {
      input = wire.parse(m.input, Buffer.concat(chunks, size));
    } catch (err) {
      fail(ConnectError.from(err, Code.InvalidArgument));
      return;
    }
    m.impl(input, ctx).then(succeed, (err: unknown) => fail(ConnectError.from(err)));
  });

  function cleanup(): void {
    finished = true;
    clearTimeout(timer);
    closing.off("close", onClose);
  }

  function gone(): boolean {
    return "stream" in res ? res.stream.destroyed : res.destroyed;
  }

  function succeed(output: Message): void {
    if (finished) return;
    cleanup();
    if (gone()) return;
    wire.ok(res, m.output, output);
    series.seconds.observe((performance.now() - started) / 1000);
    series.ok.inc();
  }

  function fail(err: ConnectError, answer = true): void {
    if (finished) return;
    cleanup();
    abort?.abort(err);
    series.seconds.observe((performance.now() - started) / 1000);
    o.metrics.handled.inc({ ...m.labels, protocol: wire.protocol, grpc_code: Code[err.code] });
    if (!answer || gone() || res.headersSent) return;
    wire.error(res, err);
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
