/**
 * The lean path for etcd's Watch in native gRPC over HTTP/2 (etcdctl, clientv3, Kubernetes): the same
 * watch hub as the Connect handler, without connect-es's per-message stream machinery. The benchmark
 * measured 10,000 watchers of one key at ~10k deliveries/s through connect-es (p99 ~2 s for 100 puts);
 * here every batch the hub has queued for a client goes out as one write.
 *
 * Wire (wire.md §3): length-prefixed messages both ways, trailers at the end. A client half-close keeps the
 * watches (etcd does); a client reset ends the RPC and, through the hub, its upstream watches.
 */
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type * as http from "node:http";
import type * as http2 from "node:http2";
import { WatchRequestSchema, WatchResponseSchema, type WatchRequest, type WatchResponse } from "../../gen/etcdserverpb/rpc_pb.js";
import type { Metrics } from "../observe/metrics.js";
import { grpcFrame } from "../upstream/grpc-frame.js";
import { CALLER_METADATA } from "../upstream/upstream.js";
import type { WatchHub } from "../upstream/watch-hub.js";

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;

const PATH = "/etcdserverpb.Watch/Watch";
const LABELS = { grpc_type: "bidi_stream", grpc_service: "etcdserverpb.Watch", grpc_method: "Watch", protocol: "grpc" } as const;

/**
 * Requests decoded and not yet taken by the hub. Past HIGH the client's stream is paused (HTTP/2 flow
 * control then holds the client back, as etcd's blocking receive does); below LOW it resumes.
 */
const HIGH_WATER = 64;
const LOW_WATER = 16;

export interface GrpcWatchOptions {
  hub: WatchHub;
  /** Largest request message (--max-send-bytes): ResourceExhausted beyond. */
  readMaxBytes: number;
  metrics: Metrics;
}

export function grpcWatch(o: GrpcWatchOptions): (req: Req, res: Res) => boolean {
  return (req, res) => {
    if (req.httpVersionMajor !== 2 || req.method !== "POST" || req.url !== PATH || !("stream" in res)) return false;
    const contentType = req.headers["content-type"];
    if (contentType !== "application/grpc" && contentType !== "application/grpc+proto") return false;
    const encoding = req.headers["grpc-encoding"];
    if (encoding !== undefined && encoding !== "identity") return false;
    void serve(req as http2.Http2ServerRequest, res, o);
    return true;
  };
}

async function serve(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, o: GrpcWatchOptions): Promise<void> {
  const stream = res.stream;
  const started = performance.now();
  o.metrics.started.inc(LABELS);
  o.metrics.openStreams.inc({ grpc_service: LABELS.grpc_service, grpc_method: LABELS.grpc_method, protocol: "grpc" });
  const abort = new AbortController();
  const onClose = () => abort.abort(new ConnectError("context canceled", Code.Canceled));
  stream.once("close", onClose);
  const header = new Headers();
  for (const name of CALLER_METADATA) {
    const v = req.headers[name];
    if (typeof v === "string") header.set(name, v);
  }
  const feed = new RequestFeed(req, o.readMaxBytes);
  let failure: ConnectError | undefined;
  try {
    const batches = o.hub.watchBatches({ requestHeader: header, signal: abort.signal, timeoutMs: () => undefined }, feed);
    for await (const batch of batches) {
      if (stream.destroyed) break;
      if (!res.headersSent) res.writeHead(200, { "content-type": "application/grpc" });
      if (!res.write(encode(batch))) await drained(res, abort.signal);
    }
    if (feed.failure) failure = feed.failure;
  } catch (err) {
    failure = ConnectError.from(err);
  } finally {
    stream.off("close", onClose);
    o.metrics.openStreams.dec({ grpc_service: LABELS.grpc_service, grpc_method: LABELS.grpc_method, protocol: "grpc" });
    o.metrics.handled.inc({ ...LABELS, grpc_code: failure ? Code[failure.code] : abort.signal.aborted ? "Canceled" : "OK" });
    o.metrics.handlingSeconds.observe(LABELS, (performance.now() - started) / 1000);
  }
  if (stream.destroyed) return;
  const status = { "grpc-status": String(failure?.code ?? 0), ...(failure ? { "grpc-message": encodeURIComponent(failure.rawMessage) } : {}) };
  if (!res.headersSent) {
    stream.respond({ ":status": 200, "content-type": "application/grpc", ...status }, { endStream: true });
    return;
  }
  res.addTrailers(status);
  res.end();
}

function encode(batch: WatchResponse[]): Buffer {
  const frames: Buffer[] = [];
  for (const r of batch) {
    frames.push(grpcFrame(toBinary(WatchResponseSchema, r)));
  }
  return frames.length === 1 ? frames[0]! : Buffer.concat(frames);
}

function drained(res: http2.Http2ServerResponse, signal: AbortSignal): Promise<void> {
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

/** The client's WatchRequests, decoded from its gRPC frames as they arrive; ends on its half-close. */
class RequestFeed implements AsyncIterable<WatchRequest> {
  private readonly items: WatchRequest[] = [];
  private pending: Buffer = Buffer.alloc(0);
  private ended = false;
  private wake: (() => void) | undefined;
  failure: ConnectError | undefined;

  constructor(private readonly source: http2.Http2ServerRequest, private readonly readMaxBytes: number) {
    source.on("data", (chunk: Buffer) => this.take(chunk));
    source.on("end", () => this.finish());
    source.on("error", () => this.finish());
  }

  private take(chunk: Buffer): void {
    if (this.ended) return;
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    while (this.pending.length >= 5) {
      const length = this.pending.readUInt32BE(1);
      if (length > this.readMaxBytes) return this.fail(new ConnectError(`message size ${length} is larger than configured readMaxBytes ${this.readMaxBytes}`, Code.ResourceExhausted));
      if (this.pending[0] !== 0) return this.fail(new ConnectError("parse binary: compressed message without grpc-encoding", Code.InvalidArgument));
      if (this.pending.length < 5 + length) break;
      try {
        this.items.push(fromBinary(WatchRequestSchema, this.pending.subarray(5, 5 + length), { readUnknownFields: true }));
      } catch (err) {
        return this.fail(new ConnectError(`parse binary: ${(err as Error).message}`, Code.InvalidArgument));
      }
      this.pending = this.pending.subarray(5 + length);
    }
    if (this.items.length >= HIGH_WATER) this.source.pause();
    this.wake?.();
  }

  private fail(err: ConnectError): void {
    this.failure = err;
    this.finish();
  }

  private finish(): void {
    this.ended = true;
    this.wake?.();
  }

  [Symbol.asyncIterator](): AsyncIterator<WatchRequest> {
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
