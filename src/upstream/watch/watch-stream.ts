/**
 * One client Watch RPC: its watchers by watch_id, its requests in order, and its bounded output buffer.
 * It answers as etcd's v3rpc/watch.go does: created/canceled per watcher, ids 0,1,2… unless the client
 * chose one, refusals with watch_id -1, progress answers with watch_id -1, and a half-close that leaves
 * the watches running.
 */
import { create } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import { WatchResponseSchema, type ResponseHeader, type WatchCreateRequest, type WatchRequest, type WatchResponse } from "../../../gen/etcdserverpb/rpc_pb.js";
import type { WatchRanges } from "./watch-ranges.js";
import { capByCaches, progressFromCaches } from "./cache-feed.js";
import { isEmptyRange, Watcher, watcherSpec } from "./watcher.js";

/**
 * The output buffer of one client stream: 1024 responses (etcd's proxy uses the same count) or 16 MiB of
 * keys and values, whichever comes first. When an event response does not fit, the watcher it was for is
 * parked: taken off its broadcast at the revision it has reached, so the other clients never wait and
 * memory does not grow. Parked watchers re-attach from that revision on their own upstream watch once the
 * client has read the buffer down to a quarter: they get every event they missed from etcd's history,
 * or, if that revision was compacted meanwhile, etcd's compaction cancel. (Opening that watch while the
 * client is not reading would only move the backlog into the shared upstream stream, stalling everyone.)
 * Control responses (created, canceled, progress answers) always fit: the request loop waits for room
 * before it reads the next request, as etcd's recvLoop waits on its control channel.
 */
export const WATCH_BUFFER_RESPONSES = 1024;
export const WATCH_BUFFER_BYTES = 16 * 1024 * 1024;
const RESUME_RESPONSES = WATCH_BUFFER_RESPONSES / 4;
const RESUME_BYTES = WATCH_BUFFER_BYTES / 4;

/** progress_requests of one stream waiting for etcd; more wait for an answer first (etcd's ctrl channel holds 16). */
const MAX_PENDING_PROGRESS = 16;

/** etcd's own texts (mvcc/watcher.go), sent as cancel_reason. */
const EMPTY_RANGE = "mvcc: watcher range is empty";
const DUPLICATE_ID = "mvcc: duplicate watch ID provided on the WatchStream";

export class WatchStream {
  /** Created watchers by client watch_id, including ended ones until the client cancels them (as etcd). */
  private readonly byId = new Map<bigint, Watcher>();
  private nextId = 0n;
  /** The watcher whose create is being answered (requests are handled one at a time, in order). */
  private creating: Watcher | undefined;
  private readonly queue: WatchResponse[] = [];
  private readonly sizes: number[] = [];
  private queuedBytes = 0;
  readonly parked = new Set<Watcher>();
  private pendingProgress = 0;
  /** progress answers held back while watchers are parked: asked again once they are back. */
  private deferredProgress = 0;
  private failure: ConnectError | undefined;
  private wake: (() => void) | undefined;
  private roomWaiters: (() => void)[] = [];
  closed = false;
  private readonly done: Promise<void>;
  private resolveDone!: () => void;

  constructor(private readonly ranges: WatchRanges, signal: AbortSignal) {
    this.done = new Promise((resolve) => { this.resolveDone = resolve; });
    ranges.streams.add(this);
    signal.addEventListener("abort", () => this.close(), { once: true });
  }

  get watcherCount(): number {
    let n = 0;
    for (const w of this.byId.values()) if (!w.ended) n++;
    return n;
  }

  get bufferedResponses(): number {
    return this.queue.length;
  }

  /** The RPC's responses; requests are read alongside. Ends when the client goes away, not on half-close. */
  async *responses(requests: AsyncIterable<WatchRequest>): AsyncGenerator<WatchResponse> {
    for await (const batch of this.batches(requests)) yield* batch;
  }

  /**
   * The same responses, as many at a time as are queued: one event fanned out to a hundred watchers of
   * one client becomes one write on its connection (the native-gRPC fast path writes each batch at once).
   */
  async *batches(requests: AsyncIterable<WatchRequest>): AsyncGenerator<WatchResponse[]> {
    void this.readRequests(requests);
    try {
      for (;;) {
        if (this.failure) throw this.failure;
        if (this.queue.length > 0) {
          const batch = this.queue.splice(0);
          this.sizes.length = 0;
          this.queuedBytes = 0;
          this.afterRead();
          yield batch;
          continue;
        }
        if (this.closed) return;
        await new Promise<void>((resolve) => { this.wake = resolve; });
        this.wake = undefined;
      }
    } finally {
      this.close();
    }
  }

  private async readRequests(requests: AsyncIterable<WatchRequest>): Promise<void> {
    try {
      for await (const req of requests) {
        await this.room();
        if (this.closed) return;
        switch (req.requestUnion.case) {
          case "createRequest": await this.create(req.requestUnion.value); break;
          case "cancelRequest": this.cancel(req.requestUnion.value.watchId); break;
          case "progressRequest": await this.progress(); break;
          default: break; // etcd ignores a request it does not know rather than end the stream
        }
      }
      // Half-close: etcd keeps the stream and its watches (recvLoop returns nil on EOF), and so do we.
    } catch (err) {
      if (!this.closed) this.fail(ConnectError.from(err));
    }
  }

  private async create(r: WatchCreateRequest): Promise<void> {
    const w = new Watcher(this, watcherSpec(r));
    if (w.spec.watchId !== 0n && this.byId.has(w.spec.watchId)) {
      // etcd checks permission, then the range, then the id (v3rpc recvLoop, mvcc watchStream.Watch).
      const check = await this.ranges.access.check(w.spec, 0n);
      const reason = check.kind === "refused" ? check.reason : isEmptyRange(w.spec) ? EMPTY_RANGE : DUPLICATE_ID;
      this.refuse(w, (check.kind === "ok" ? check.header : undefined) ?? this.ranges.header(), reason);
      return;
    }
    this.creating = w;
    try {
      await this.ranges.attachNew(w);
      await Promise.race([w.settled, this.done]);
    } finally {
      this.creating = undefined;
    }
  }

  private cancel(id: bigint): void {
    const w = this.byId.get(id);
    if (!w) return; // etcd answers nothing for an unknown id
    this.byId.delete(id);
    this.parked.delete(w);
    w.ended = true;
    this.ranges.detach(w);
    this.force(create(WatchResponseSchema, { header: this.ranges.header(), watchId: id, canceled: true }));
  }

  /**
   * Forwarded to etcd on this identity's upstream stream; etcd's answer comes after every response it
   * sent before it, and it is queued after everything those gave this client, so its revision holds for
   * all of this client's watchers.
   */
  private async progress(): Promise<void> {
    while (this.pendingProgress >= MAX_PENDING_PROGRESS && !this.closed) await new Promise<void>((r) => this.roomWaiters.push(r));
    if (this.closed) return;
    this.askProgress();
  }

  private askProgress(): void {
    this.pendingProgress++;
    const answer = (h: ResponseHeader | undefined) => {
      this.pendingProgress--;
      this.notifyRoom();
      if (this.closed || !h) return;
      if (this.parked.size > 0) this.deferredProgress++;
      else this.force(create(WatchResponseSchema, { header: capByCaches(this.byId.values(), h), watchId: -1n }));
    };
    const fromCache = progressFromCaches(this.byId.values(), this.ranges.header());
    if (fromCache) void fromCache.then(answer, () => answer(undefined));
    else this.ranges.upstream.requestProgress(answer);
  }

  /** Called when a watcher's created is due: assigns its id and queues the one created it will ever get. */
  created(w: Watcher, header: ResponseHeader | undefined): void {
    if (this.closed || w.createdSent) return;
    let id = w.spec.watchId;
    if (id === 0n) {
      while (this.byId.has(this.nextId)) this.nextId++;
      id = this.nextId++;
    }
    w.id = id;
    w.createdSent = true;
    w.noteHeader(header);
    this.byId.set(id, w);
    this.force(create(WatchResponseSchema, { header, watchId: id, created: true }));
    w.settle();
  }

  /** The create failed as etcd fails it: created and canceled, watch_id -1, no id used up. */
  refuse(w: Watcher, header: ResponseHeader | undefined, cancelReason: string): void {
    w.ended = true;
    this.ranges.detach(w);
    if (!this.closed) this.force(create(WatchResponseSchema, { header, watchId: -1n, created: true, canceled: true, cancelReason }));
    w.settle();
  }

  /** etcd would have canceled this watcher (compaction, refused re-watch); it keeps its id until canceled. */
  end(w: Watcher, o: { header: ResponseHeader | undefined; compactRevision?: bigint; cancelReason?: string }): void {
    w.ended = true;
    this.ranges.detach(w);
    this.parked.delete(w);
    if (this.closed) return;
    this.force(create(WatchResponseSchema, { header: o.header, watchId: w.id, canceled: true, compactRevision: o.compactRevision ?? 0n, cancelReason: o.cancelReason ?? "" }));
  }

  /** Event responses: false when the buffer is full (nothing queued; the watcher gets parked). */
  offer(rs: WatchResponse[]): boolean {
    if (this.closed) return true;
    if (this.queue.length >= WATCH_BUFFER_RESPONSES || this.queuedBytes >= WATCH_BUFFER_BYTES) return false;
    for (const r of rs) this.enqueue(r);
    return true;
  }

  park(w: Watcher): void {
    this.ranges.detach(w);
    if (!this.closed && !w.ended) this.parked.add(w);
  }

  fail(err: ConnectError): void {
    if (this.closed) return;
    this.failure = err;
    this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.byId.values()) this.ranges.detach(w);
    if (this.creating) this.ranges.detach(this.creating);
    this.parked.clear();
    this.ranges.removeStream(this);
    this.notifyRoom();
    this.resolveDone();
    this.wake?.();
  }

  private force(r: WatchResponse): void {
    this.enqueue(r);
  }

  private enqueue(r: WatchResponse): void {
    const size = approxSize(r);
    this.queue.push(r);
    this.sizes.push(size);
    this.queuedBytes += size;
    this.wake?.();
  }

  private afterRead(): void {
    this.notifyRoom();
    if (this.parked.size === 0 || this.queue.length > RESUME_RESPONSES || this.queuedBytes > RESUME_BYTES) return;
    const back = [...this.parked].sort((a, b) => ((a.nextRev ?? 0n) < (b.nextRev ?? 0n) ? -1 : 1));
    this.parked.clear();
    for (const w of back) this.ranges.reattach(w);
    for (; this.deferredProgress > 0; this.deferredProgress--) this.askProgress();
  }

  /** Resolves when the buffer has room for control responses (or the stream closed). */
  private async room(): Promise<void> {
    while (!this.closed && (this.queue.length >= WATCH_BUFFER_RESPONSES || this.queuedBytes >= WATCH_BUFFER_BYTES)) {
      await new Promise<void>((r) => this.roomWaiters.push(r));
    }
  }

  private notifyRoom(): void {
    const waiters = this.roomWaiters.splice(0);
    for (const r of waiters) r();
  }
}

/** What a response holds in memory, roughly: its keys and values plus a fixed overhead. */
function approxSize(r: WatchResponse): number {
  let n = 64;
  for (const e of r.events) n += 48 + (e.kv ? e.kv.key.length + e.kv.value.length : 0) + (e.prevKv ? e.prevKv.key.length + e.prevKv.value.length : 0);
  return n;
}
