/**
 * The lean path for the hottest traffic: unary etcd RPCs in native gRPC over HTTP/2 (etcdctl, clientv3,
 * every gRPC client). It calls the very same service implementations as the Connect handlers, and skips
 * only connect-es's generic server machinery, which the benchmark measured at about ten times the CPU of
 * the handler itself per call (async-iterable plumbing, linked AbortControllers whose aborts build a
 * DOMException each, header conversions). Anything it does not fully handle goes to the Connect handlers
 * untouched: compressed messages, gRPC-Web, Connect, streams, other services.
 *
 * Wire behaviour follows wire.md §3: one length-prefixed message in, HEADERS + DATA + trailers out, or a
 * trailers-only answer for an error; grpc-timeout is honoured and a client's RST_STREAM cancels the call.
 */
import { fromBinary, toBinary, type DescMessage, type DescMethod, type DescService, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import type * as http from "node:http";
import type * as http2 from "node:http2";
import type { Metrics } from "../observe/metrics.js";
import { grpcFrame } from "../upstream/grpc-frame.js";
import { CALLER_METADATA, type CallerContext } from "../upstream/upstream.js";

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;
type UnaryImpl = (req: Message, ctx: CallerContext) => Promise<Message>;

interface UnaryMethod {
  method: DescMethod;
  input: DescMessage;
  output: DescMessage;
  impl: UnaryImpl;
  labels: { grpc_type: "unary"; grpc_service: string; grpc_method: string; protocol: "grpc" };
}


/**
 * The unary methods of `services` that `routes` registers, by request path. Services are asked for by
 * name: their implementations must need nothing of the call context but what CallerContext has.
 */
export function unaryMethods(routes: (router: ConnectRouter) => void, services: readonly DescService[]): Map<string, UnaryMethod> {
  const wanted = new Set(services.map((s) => s.typeName));
  const methods = new Map<string, UnaryMethod>();
  const recorder = {
    handlers: [],
    service(service: DescService, impl: Record<string, unknown>) {
      if (!wanted.has(service.typeName)) return recorder;
      for (const method of service.methods) {
        const fn = impl[method.localName];
        if (method.methodKind !== "unary" || typeof fn !== "function") continue;
        methods.set(`/${service.typeName}/${method.name}`, {
          method,
          input: method.input,
          output: method.output,
          impl: fn.bind(impl) as UnaryImpl,
          labels: { grpc_type: "unary", grpc_service: service.typeName, grpc_method: method.name, protocol: "grpc" },
        });
      }
      return recorder;
    },
    rpc() {
      return recorder;
    },
  };
  routes(recorder as unknown as ConnectRouter);
  return methods;
}

export interface GrpcUnaryOptions {
  methods: Map<string, UnaryMethod>;
  /** Largest request message accepted (--max-send-bytes); ResourceExhausted beyond, as connect-es says it. */
  readMaxBytes: number;
  metrics: Metrics;
}

/** Returns a handler that serves the request and says true, or says false and leaves it alone. */
export function grpcUnary(o: GrpcUnaryOptions): (req: Req, res: Res) => boolean {
  return (req, res) => {
    if (req.httpVersionMajor !== 2 || req.method !== "POST" || !("stream" in res)) return false;
    const contentType = req.headers["content-type"];
    if (contentType !== "application/grpc" && contentType !== "application/grpc+proto") return false;
    const encoding = req.headers["grpc-encoding"];
    if (encoding !== undefined && encoding !== "identity") return false;
    const m = o.methods.get(req.url ?? "");
    if (!m) return false;
    serve(req as http2.Http2ServerRequest, res, m, o);
    return true;
  };
}

function serve(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, m: UnaryMethod, o: GrpcUnaryOptions): void {
  const stream = res.stream;
  const series = seriesOf(m, o.metrics);
  const started = performance.now();
  series.started.inc();
  // Made on first use: a cache hit never looks at the signal, and an AbortController per call is not free.
  let abort: AbortController | undefined;
  let finished = false;
  const timeoutMs = parseTimeout(req.headers["grpc-timeout"]);
  const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
  const timer = timeoutMs === undefined ? undefined : setTimeout(() => fail(new ConnectError("the operation timed out", Code.DeadlineExceeded)), timeoutMs);
  // A client that resets the stream cancels the call; an explicit reason avoids building a DOMException.
  const onClose = () => {
    if (!finished) fail(new ConnectError("context canceled", Code.Canceled), false);
  };
  stream.once("close", onClose);

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

  // The request: one length-prefixed message, read whole (bounded by readMaxBytes).
  const chunks: Buffer[] = [];
  let size = 0;
  req.on("data", (chunk: Buffer) => {
    if (finished) return;
    size += chunk.length;
    if (size > o.readMaxBytes + 5) {
      fail(new ConnectError(`message size ${size - 5} is larger than configured readMaxBytes ${o.readMaxBytes}`, Code.ResourceExhausted));
      return;
    }
    chunks.push(chunk);
  });
  req.on("end", () => {
    if (finished) return;
    let input: Message;
    try {
      input = fromBinary(m.input, unwrap(Buffer.concat(chunks, size)), { readUnknownFields: true });
    } catch (err) {
      fail(err instanceof ConnectError ? err : new ConnectError(`parse binary: ${(err as Error).message}`, Code.InvalidArgument));
      return;
    }
    m.impl(input, ctx).then(succeed, (err: unknown) => fail(ConnectError.from(err)));
  });

  function cleanup(): void {
    finished = true;
    clearTimeout(timer);
    stream.off("close", onClose);
  }

  function succeed(output: Message): void {
    if (finished) return;
    cleanup();
    const bytes = toBinary(m.output, output);
    const frame = grpcFrame(bytes);
    if (stream.destroyed) return;
    // Through the compat response: it owns the stream's wantTrailers handler and sends these trailers.
    res.writeHead(200, { "content-type": "application/grpc" });
    res.addTrailers({ "grpc-status": "0" });
    res.end(frame);
    series.seconds.observe((performance.now() - started) / 1000);
    series.ok.inc();
  }

  function fail(err: ConnectError, answer = true): void {
    if (finished) return;
    cleanup();
    abort?.abort(err);
    series.seconds.observe((performance.now() - started) / 1000);
    o.metrics.handled.inc({ ...m.labels, grpc_code: Code[err.code] });
    if (!answer || stream.destroyed || stream.headersSent) return;
    // Trailers-only: the status in the one HEADERS frame, with END_STREAM.
    stream.respond({
      ":status": 200,
      "content-type": "application/grpc",
      ...res.getHeaders(),
      "grpc-status": String(err.code),
      "grpc-message": encodeURIComponent(err.rawMessage),
    }, { endStream: true });
  }
}

/**
 * The metric series of one method, looked up once: label hashing on every call was a measurable share of
 * a cache hit's cost.
 */
const seriesCache = new WeakMap<UnaryMethod, { started: Counter; ok: Counter; seconds: Histogram }>();
type Counter = { inc(): void };
type Histogram = { observe(v: number): void };

function seriesOf(m: UnaryMethod, metrics: Metrics) {
  let s = seriesCache.get(m);
  if (!s) {
    s = {
      started: metrics.started.labels(m.labels),
      ok: metrics.handled.labels({ ...m.labels, grpc_code: "OK" }),
      seconds: metrics.handlingSeconds.labels(m.labels),
    };
    seriesCache.set(m, s);
  }
  return s;
}

/** The one message of a unary gRPC request body (uncompressed: compressed bodies never come here). */
function unwrap(body: Buffer): Uint8Array {
  if (body.length < 5) throw new ConnectError(`parse binary: premature EOF (${body.length} bytes, no message)`, Code.InvalidArgument);
  if (body[0] !== 0) throw new ConnectError("parse binary: compressed message without grpc-encoding", Code.InvalidArgument);
  const length = body.readUInt32BE(1);
  if (body.length !== 5 + length) throw new ConnectError(`parse binary: expected one message of ${length} bytes, got ${body.length - 5}`, Code.InvalidArgument);
  return body.subarray(5);
}

/** grpc-timeout: up to 8 digits and a unit (wire.md §3), in milliseconds; undefined when absent or bad. */
function parseTimeout(value: string | string[] | undefined): number | undefined {
  if (typeof value !== "string") return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (!m) return undefined;
  const n = Number(m[1]);
  const ms = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 }[m[2] as "H"];
  return Math.max(1, Math.ceil(n * ms));
}
