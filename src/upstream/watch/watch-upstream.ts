/**
 * The upstream Watch stream of one caller identity: every broadcast of that identity is one watch on it.
 * It is opened with that identity's metadata only (token / authorization / hasleader), so one user's watch
 * never rides another user's token (etcd's proxy shared one stream: #19296). The proxy picks each upstream
 * watch_id itself (WatchCreateRequest.watch_id, etcd >= 3.4), so events are routed by id, never by the
 * position of a created response.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { WatchRequestSchema, type ResponseHeader, type WatchRequest, type WatchResponse } from "../../../gen/etcdserverpb/rpc_pb.js";
import { EtcdMessages } from "../../wire/errors.js";
import { PushQueue } from "../client/push-queue.js";
import type { CallerContext } from "../../wire/caller.js";
import type { Upstream } from "../client/upstream.js";
import type { WatchBroadcast } from "./watch-broadcast.js";

/**
 * Requests queued for etcd and not yet taken by the transport. Every one is a create, cancel or progress
 * request of a watcher (each bounded elsewhere), so this is a safety net: full → the stream is treated as
 * broken and rebuilt, and its watchers re-attach from their own revisions.
 */
const MAX_QUEUED_REQUESTS = 65_536;

/** Reconnect backoff after the upstream stream fails: 100 ms doubling to 3 s, reset by any response. */
const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 3_000;

export interface UpstreamWatchOwner {
  /** Every broadcast that was on a stream that broke; they re-attach elsewhere. */
  lost(broadcasts: WatchBroadcast[]): void;
  /** The identity asked `hasleader` and etcd has none: its clients get etcd's error, as etcd does. */
  fatal(err: ConnectError, broadcasts: WatchBroadcast[]): void;
  noteHeader(h: ResponseHeader): void;
}

type ProgressWaiter = (h: ResponseHeader | undefined) => void;

/** One attempt at the upstream RPC; replaced by a new one when it fails. */
interface Connection {
  readonly requests: PushQueue<WatchRequest>;
  readonly abort: AbortController;
  /** Watches on this connection by the id we gave them. */
  readonly byId: Map<bigint, WatchBroadcast>;
  /** Creates sent, in order: etcd answers them in order, and a refusal carries watch_id -1. */
  readonly creating: WatchBroadcast[];
  /** progress_request callers, in order: etcd's answers carry watch_id -1. */
  readonly progress: ProgressWaiter[];
  open: boolean;
}

export class UpstreamWatchStream {
  private conn: Connection | undefined;
  private nextId = 1n;
  private failures = 0;

  constructor(private readonly up: Upstream, private readonly headers: Headers, private readonly owner: UpstreamWatchOwner) {}

  get isOpen(): boolean {
    return this.conn !== undefined;
  }

  /** Always asks prev_kv and progress_notify, never filters: each c-watcher strips what it did not ask. */
  create(b: WatchBroadcast): void {
    const c = this.connection();
    b.upstreamId = this.nextId++;
    c.byId.set(b.upstreamId, b);
    c.creating.push(b);
    this.send(c, create(WatchRequestSchema, {
      requestUnion: {
        case: "createRequest",
        value: { key: b.key, rangeEnd: b.rangeEnd, startRevision: b.startRevision, prevKv: true, progressNotify: true, watchId: b.upstreamId },
      },
    }));
  }

  cancel(b: WatchBroadcast): void {
    b.canceledByUs = true;
    const c = this.conn;
    if (!c || c.byId.get(b.upstreamId) !== b) return;
    c.byId.delete(b.upstreamId);
    this.send(c, create(WatchRequestSchema, { requestUnion: { case: "cancelRequest", value: { watchId: b.upstreamId } } }));
    this.closeIfIdle();
  }

  /** etcd answers with a watch_id -1 header; `answer` gets it (undefined if the stream failed for good). */
  requestProgress(answer: ProgressWaiter): void {
    const c = this.connection();
    c.progress.push(answer);
    this.send(c, create(WatchRequestSchema, { requestUnion: { case: "progressRequest", value: {} } }));
  }

  close(): void {
    const c = this.conn;
    this.conn = undefined;
    if (!c) return;
    c.open = false;
    c.requests.close();
    c.abort.abort();
    for (const p of c.progress.splice(0)) p(undefined);
  }

  private connection(): Connection {
    if (this.conn) return this.conn;
    const c: Connection = {
      requests: new PushQueue<WatchRequest>(MAX_QUEUED_REQUESTS),
      abort: new AbortController(),
      byId: new Map(),
      creating: [],
      progress: [],
      open: true,
    };
    this.conn = c;
    const delay = this.failures === 0 ? 0 : Math.min(BACKOFF_FIRST_MS * 2 ** (this.failures - 1), BACKOFF_MAX_MS);
    if (delay === 0) void this.run(c);
    else setTimeout(() => void this.run(c), delay);
    return c;
  }

  private send(c: Connection, req: WatchRequest): void {
    if (!c.requests.push(req)) this.broken(c, new ConnectError("watch request queue to etcd is full", Code.ResourceExhausted));
  }

  private async run(c: Connection): Promise<void> {
    if (!c.open) return;
    const caller: CallerContext = { requestHeader: this.headers, signal: c.abort.signal, timeoutMs: () => undefined };
    let err: unknown = new ConnectError("etcd ended the watch stream", Code.Unavailable);
    try {
      for await (const r of this.up.stream(caller, (clients, o) => clients.watch.watch(c.requests, o))) {
        if (!c.open) return;
        this.failures = 0;
        this.dispatch(c, r);
      }
    } catch (e) {
      err = e;
    }
    if (c.open) this.broken(c, ConnectError.from(err));
  }

  private dispatch(c: Connection, r: WatchResponse): void {
    if (r.header && r.header.revision > 0n) this.owner.noteHeader(r.header);
    if (r.created) {
      const b = c.creating.shift();
      if (!b) return;
      if (r.canceled) {
        c.byId.delete(b.upstreamId);
        if (!b.canceledByUs) b.onRefused(r);
        this.closeIfIdle();
      } else if (!b.canceledByUs) {
        if (r.watchId !== b.upstreamId) {
          // An etcd older than 3.4 ignores WatchCreateRequest.watch_id and numbers watches itself.
          c.byId.delete(b.upstreamId);
          b.upstreamId = r.watchId;
          c.byId.set(b.upstreamId, b);
        }
        b.onCreated(r.header);
      }
      return;
    }
    if (r.watchId === -1n) {
      // A progress_request answer: not tied to a watch (v3rpc: "broadcast to all watch channels").
      c.progress.shift()?.(r.header);
      this.closeIfIdle();
      return;
    }
    const b = c.byId.get(r.watchId);
    if (!b) return; // canceled by us; etcd's last words about it
    if (r.canceled) c.byId.delete(r.watchId);
    b.onResponse(r);
    if (r.canceled) this.closeIfIdle();
  }

  /**
   * The stream failed (etcd restarted, connection lost, our queue full): noticed here at once. Its
   * watches are handed back to re-attach from their own revisions on a new stream; pending progress
   * requests are asked again there, so every asker still gets an answer.
   */
  private broken(c: Connection, err: ConnectError): void {
    if (!c.open) return;
    c.open = false;
    c.requests.close();
    c.abort.abort();
    if (this.conn === c) this.conn = undefined;
    this.failures++;
    const lost = [...new Set([...c.creating, ...c.byId.values()])].filter((b) => !b.canceledByUs && b.state !== "dead");
    for (const b of lost) b.state = "dead";
    const progress = c.progress.splice(0);
    if (err.rawMessage === EtcdMessages.noLeader && this.headers.get("hasleader") === "true") {
      for (const p of progress) p(undefined);
      this.owner.fatal(err, lost);
      return;
    }
    this.owner.lost(lost);
    for (const p of progress) this.requestProgress(p);
  }

  /** No watch and no question left: end the upstream stream (Upstream.openStreams goes back down). */
  private closeIfIdle(): void {
    queueMicrotask(() => {
      const c = this.conn;
      if (c && c.byId.size === 0 && c.progress.length === 0) this.close();
    });
  }
}
