/**
 * The fast path for a bidi-streaming etcd RPC in native gRPC over HTTP/2 (etcdctl, clientv3, Kubernetes):
 * requests decoded from the client's frames as they arrive, and every batch of responses the hub has
 * queued for this client written as one HTTP/2 write, without connect-es's per-message stream machinery.
 * Its users are Watch and LeaseKeepAlive (route.ts binds them to the services' batch forms); gRPC-Web and
 * Connect keep the connect-es handlers.
 *
 * Wire (wire.md §3): length-prefixed messages both ways, trailers at the end. A client half-close ends the
 * request side only (what the hub does with it is the RPC's business: Watch keeps watching, etcd does); a
 * client reset aborts the caller's signal, which ends the RPC and, through the hub, its upstream share.
 */
import { toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type * as http from "node:http";
import type * as http2 from "node:http2";
import type { Readable } from "node:stream";
import type { Metrics } from "../../observe/metrics.js";
import { rpcSeries } from "../../observe/rpc-metrics.js";
import { callerHeaders, type CallerContext } from "../../wire/caller.js";
import { canceled } from "../../wire/errors.js";
import { assertUncompressed, FrameDecoder, grpcFrame, parseBinary } from "../../wire/frame.js";
import { grpcStatus, respondTrailersOnly } from "../../wire/status.js";
import type { BidiMethod } from "../../services/registry.js";
import { GRPC_CONTENT_TYPE, GRPC_RESPONSE_HEADERS, isFastGrpc } from "./grpc.js";

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;

/**
 * Requests decoded and not yet taken by the hub. Past HIGH the client's stream is paused (HTTP/2 flow
 * control then holds the client back, as etcd's blocking receive does); below LOW it resumes.
 */
const HIGH_WATER = 64;
const LOW_WATER = 16;

export interface GrpcBidiOptions<I extends DescMessage, O extends DescMessage> extends BidiMethod<I, O> {
  /** Largest request message (--max-send-bytes): ResourceExhausted beyond. */
  readMaxBytes: number;
  metrics: Metrics;
}

/** The two ways a call arrives: as a compat request/response, or as a bare HTTP/2 stream. */
export interface GrpcBidiHandlers {
  /** Takes a gRPC/HTTP2 request for this one method (and says so), or leaves it (false). */
  compat: (req: Req, res: Res) => boolean;
  /** The same for a bare stream, before the compat layer (runtime.ts streamsFirst); browsers' (Origin) excluded. */
  stream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => boolean;
}

export function grpcBidi<I extends DescMessage, O extends DescMessage>(o: GrpcBidiOptions<I, O>): GrpcBidiHandlers {
  const path = `/${o.service}/${o.method}`;
  const isOurs = (method: string | undefined, url: string | undefined, headers: http2.IncomingHttpHeaders) => url === path && isFastGrpc(method, 2, headers);
  return {
    compat: (req, res) => {
      if (req.httpVersionMajor !== 2 || !("stream" in res) || !isOurs(req.method, req.url, req.headers)) return false;
      // serve catches what the RPC throws; a throw while answering (a stream closed meanwhile) ends this
      // stream, never the process.
      serve(compatIo(req as http2.Http2ServerRequest, res), o).catch(() => res.stream.destroy());
      return true;
    },
    stream: (stream, headers) => {
      if (headers.origin !== undefined || !isOurs(headers[":method"], headers[":path"], headers)) return false;
      // Errors surface as 'close' (the client reset the stream); an unhandled 'error' would end the process.
      stream.on("error", () => {});
      serve(streamIo(stream, headers), o).catch(() => stream.destroy());
      return true;
    },
  };
}

/** What serve needs of either form. */
interface BidiIo {
  headers: http2.IncomingHttpHeaders;
  /** The request body. */
  body: Readable;
  stream: http2.ServerHttp2Stream;
  headersSent(): boolean;
  /** Sends the response headers (the first batch is ready). */
  begin(): void;
  write(chunk: Buffer): boolean;
  /** Emits 'drain' when a write that returned false has gone out. */
  drains: NodeJS.EventEmitter;
  /** Trailers after the messages. */
  end(status: http2.OutgoingHttpHeaders): void;
}

function compatIo(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): BidiIo {
  return {
    headers: req.headers,
    body: req,
    stream: res.stream,
    headersSent: () => res.headersSent,
    begin: () => res.writeHead(200, { "content-type": GRPC_CONTENT_TYPE }),
    write: (chunk) => res.write(chunk),
    drains: res,
    end: (status) => {
      res.addTrailers(status);
      res.end();
    },
  };
}

function streamIo(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): BidiIo {
  return {
    headers,
    body: stream,
    stream,
    headersSent: () => stream.headersSent,
    begin: () => stream.respond(GRPC_RESPONSE_HEADERS, { waitForTrailers: true }),
    write: (chunk) => stream.write(chunk),
    drains: stream,
    end: (status) => {
      stream.once("wantTrailers", () => stream.sendTrailers(status));
      stream.end();
    },
  };
}

async function serve<I extends DescMessage, O extends DescMessage>(io: BidiIo, o: GrpcBidiOptions<I, O>): Promise<void> {
  const stream = io.stream;
  const started = performance.now();
  const s = rpcSeries(o.metrics, { grpc_type: "bidi_stream", grpc_service: o.service, grpc_method: o.method }, "grpc");
  s.started.inc();
  s.streamOpened();
  const abort = new AbortController();
  const onClose = () => abort.abort(canceled());
  stream.once("close", onClose);
  // A bad request frame ends the whole RPC with its error: the hubs read the end of the requests as a
  // half-close, which keeps a watch open (as on etcd), so the failure must abort the call itself.
  const feed = new RequestFeed(io.body, o.input, o.readMaxBytes, (err) => abort.abort(err));
  const toBytes = o.encode ?? ((m: MessageShape<O>) => toBinary(o.output, m));
  let failure: ConnectError | undefined;
  try {
    for await (const batch of o.serve({ requestHeader: callerHeaders(io.headers), signal: abort.signal, timeoutMs: () => undefined }, feed)) {
      if (stream.destroyed) break;
      if (batch.length === 0) continue;
      if (!io.headersSent()) io.begin();
      if (!io.write(encode(batch, toBytes))) await drained(io.drains, abort.signal);
    }
    if (feed.failure) failure = feed.failure;
  } catch (err) {
    failure = feed.failure ?? ConnectError.from(err);
  } finally {
    stream.off("close", onClose);
    s.streamClosed();
    if (failure) s.failed(failure.code);
    else if (abort.signal.aborted) s.failed(Code.Canceled);
    else s.ok.inc();
    s.seconds.observe((performance.now() - started) / 1000);
  }
  if (stream.destroyed) return;
  if (!io.headersSent()) return respondTrailersOnly(stream, GRPC_CONTENT_TYPE, failure);
  io.end(grpcStatus(failure));
}

function encode<M>(batch: M[], toBytes: (m: M) => Uint8Array): Buffer {
  if (batch.length === 1) return grpcFrame(toBytes(batch[0]!));
  return Buffer.concat(batch.map((m) => grpcFrame(toBytes(m))));
}

function drained(res: NodeJS.EventEmitter, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    res.once("drain", done);
    signal.addEventListener("abort", done, { once: true });
  });
}

/** The client's requests, decoded from its gRPC frames as they arrive; ends on its half-close. */
class RequestFeed<I extends DescMessage> implements AsyncIterable<MessageShape<I>> {
  private readonly items: MessageShape<I>[] = [];
  private readonly frames: FrameDecoder;
  private ended = false;
  private wake: (() => void) | undefined;
  failure: ConnectError | undefined;

  constructor(private readonly source: Readable, private readonly schema: I, readMaxBytes: number, private readonly onFail: (err: ConnectError) => void) {
    this.frames = new FrameDecoder(readMaxBytes);
    source.on("data", (chunk: Buffer) => this.take(chunk));
    // A body that ends inside a frame is a truncated message: InvalidArgument, as for a unary call.
    source.on("end", () => (this.frames.buffered > 0 ? this.fail(new ConnectError(`parse binary: premature EOF (${this.frames.buffered} bytes of an unfinished message)`, Code.InvalidArgument)) : this.finish()));
    source.on("error", () => this.finish());
  }

  /** A 'data' listener: a bad frame fails this RPC (InvalidArgument or ResourceExhausted), nothing more. */
  private take(chunk: Buffer): void {
    if (this.ended) return;
    try {
      for (const f of this.frames.push(chunk)) {
        assertUncompressed(f.flag);
        this.items.push(parseBinary(this.schema, f.bytes));
      }
    } catch (err) {
      return this.fail(ConnectError.from(err, Code.InvalidArgument));
    }
    if (this.items.length >= HIGH_WATER) this.source.pause();
    this.wake?.();
  }
  private fail(err: ConnectError): void {
    this.failure = err;
    this.finish();
    this.onFail(err);
  }

  private finish(): void {
    this.ended = true;
    this.wake?.();
  }

  [Symbol.asyncIterator](): AsyncIterator<MessageShape<I>> {
    return {
      next: async () => {
        for (;;) {
          if (this.failure) throw this.failure;
          const item = this.items.shift();
          if (item) {
            if (this.items.length <= LOW_WATER && this.source.isPaused()) this.source.resume();
            return { done: false, value: item };
          }
          if (this.ended) return { done: true, value: undefined };
          await new Promise<void>((resolve) => { this.wake = resolve; });
          this.wake = undefined;
        }
      },
      return: async () => {
        this.finish();
        return { done: true, value: undefined };
      },
    };
  }
}
