/**
 * One cached prefix: its current keys and its recent history, kept equal to etcd's by one upstream watch.
 *
 * Start: a snapshot (a Range of the prefix at revision R, in pages pinned to R), then a watch from R+1 with
 * prev_kv and progress_notify on a stream of its own. `rev`: every change of the prefix up to it is in
 * the store and the history, and nothing after it. It moves with events and with progress notifications
 * that etcd orders with them.
 *
 * After a break the cache is off at once (everything goes to etcd: nothing stale is served), its
 * watchers are handed back (`lost`), and the watch is made again from rev+1, so etcd replays what was
 * missed; a new snapshot instead when that cannot be exact (snapshot.ts resumable).
 *
 * Progress requests: etcd 3.4.31+ and 3.5.13+ answer one in order with the stream's events; older ones
 * may answer before events they have committed, so there `rev` never moves on such an answer
 * (etcd-version.ts), and a consistent read waits only for events it will get anyway (watch-cache.ts).
 */
import { create } from "@bufbuild/protobuf";
import { ResponseHeaderSchema, WatchRequestSchema, type ResponseHeader, type WatchRequest, type WatchResponse } from "../../../gen/etcdserverpb/rpc_pb.js";
import { Event_EventType, type Event, type KeyValue } from "../../../gen/mvccpb/kv_pb.js";
import type { Logger } from "../../observe/log.js";
import type { CallerContext } from "../../wire/caller.js";
import { EtcdMessages } from "../../wire/errors.js";
import { intervalOf, keyString, type KeyInterval } from "../client/key-ranges.js";
import { pause } from "../client/pause.js";
import { PushQueue } from "../client/push-queue.js";
import type { Upstream } from "../client/upstream.js";
import { AnswerMemo } from "./answer-memo.js";
import { History, type HistoryLimits } from "./history.js";
import { ownCopy, resumable, takeSnapshot, TooLarge } from "./snapshot.js";
import { KeyStore } from "./key-store.js";
import { viewAt } from "./view.js";

/** Retry after a failed start or a break: 250 ms doubling to 10 s, reset once the watch is live. */
const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 10_000;
const TOO_LARGE_RETRY_MS = 10 * 60_000; // a prefix over the store's bound: each try reads all of it
const HOUSEKEEPING_MS = 5_000; // the history's age bound, applied when no event comes to apply it
/** Our watch's id on its stream (a stream of its own: a progress answer then speaks of it alone). */
const WATCH_ID = 1n;

export interface CacheListener {
  /** One upstream response's events, all inside the prefix, already applied; `rev` is the cache's new revision. */
  events(r: WatchResponse, rev: bigint): void;
  /**
   * Every progress interval (etcd's --experimental-watch-progress-notify-interval, which etcd applies to
   * each watch that had no events in it): nothing the listener has not had up to `rev`.
   */
  tick(rev: bigint): void;
  /** The cache is no longer exact (it broke or starts over): the listener is dropped and must move. */
  lost(): void;
}

export class PrefixCache {
  readonly iv: KeyInterval;
  readonly store = new KeyStore();
  history: History;
  ready = false;
  rev = 0n;
  /** The newest header etcd sent on the cache's watch (cluster, member, raft term). */
  header: ResponseHeader | undefined;
  /** See the file comment: whether a progress answer may move `rev`. */
  progressSafe = false;
  readonly listeners = new Set<CacheListener>();
  /** Answers built from this prefix, for readers asking the same at the same revision (answer-memo.ts). */
  readonly memo = new AnswerMemo();
  snapshots = 0;
  reconnects = 0;
  private requests: PushQueue<WatchRequest> | undefined;
  private progressAsked = false;
  private waiters: { rev: bigint; resolve: (ok: boolean) => void }[] = [];
  /** Waiting for the next progress answer (latest()). */
  private answerWaiters: (() => void)[] = [];
  private readonly stopped = new AbortController();
  private housekeeping: ReturnType<typeof setInterval> | undefined;
  private ticker: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly up: Upstream, readonly key: Uint8Array, readonly rangeEnd: Uint8Array, private readonly limits: HistoryLimits & { maxStoreBytes: number; progressNotifyMs: number }, private readonly log: Logger | undefined) {
    this.iv = intervalOf(key, rangeEnd) ?? { start: keyString(key), end: keyString(key) };
    this.history = new History(limits, 0n);
  }

  start(): void {
    // The age bound holds on a quiet prefix too; fed watchers get etcd's per-watch progress notifications.
    this.housekeeping = setInterval(() => this.history.trim(Date.now()), HOUSEKEEPING_MS);
    this.ticker = setInterval(() => this.tick(), this.limits.progressNotifyMs);
    for (const t of [this.housekeeping, this.ticker]) (t as { unref?: () => void }).unref?.();
    this.run().catch((err: unknown) => this.log?.error({ prefix: this.iv.start, err: String(err) }, "watch cache: stopped"));
  }

  close(): void {
    clearInterval(this.housekeeping);
    clearInterval(this.ticker);
    this.stopped.abort();
    this.requests?.close();
    this.goOff();
  }

  /** etcd's header (cluster, member, raft term: `from`, else the cache watch's newest) at revision `rev`. */
  headerAt(rev: bigint, from: ResponseHeader | undefined = this.header): ResponseHeader {
    return create(ResponseHeaderSchema, { clusterId: from?.clusterId ?? 0n, memberId: from?.memberId ?? 0n, raftTerm: from?.raftTerm ?? 0n, revision: rev });
  }

  covers(iv: KeyInterval): boolean {
    return iv.start >= this.iv.start && (this.iv.end === undefined || (iv.end !== undefined && iv.end <= this.iv.end));
  }

  /** The keys of `iv` at revision `at` (>= history.floor, <= rev), in key order; undefined if out of reach. */
  view(at: bigint, iv: KeyInterval): KeyValue[] | undefined {
    if (!this.ready || at < this.history.floor || at > this.rev) return undefined;
    return viewAt(this.store, this.history, at === this.rev ? undefined : at, iv);
  }

  /**
   * Resolves true once `rev` >= `target`, false after `ms` or when the cache goes off. Where progress
   * answers are safe, one is asked so a quiet prefix catches up at once.
   */
  waitFor(target: bigint, ms: number): Promise<boolean> {
    if (this.ready && this.rev >= target) return Promise.resolve(true);
    if (!this.ready || ms <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const waiter = { rev: target, resolve: (ok: boolean) => { clearTimeout(timer); resolve(ok); } };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(false);
      }, ms);
      this.waiters.push(waiter);
      this.askProgress();
    });
  }

  /**
   * The revision up to which the cache holds everything, after asking etcd where that is safe: on a stream
   * whose watchers are all fed from here, this is the progress answer (etcd's head once its answer is
   * in); else, or after `ms`, the cache's own revision.
   */
  latest(ms: number): Promise<bigint> {
    if (!this.ready || !this.progressSafe || !this.requests) return Promise.resolve(this.rev);
    return new Promise((resolve) => {
      const done = () => { clearTimeout(timer); resolve(this.rev); };
      const timer = setTimeout(() => { this.answerWaiters = this.answerWaiters.filter((w) => w !== done); resolve(this.rev); }, ms);
      this.answerWaiters.push(done);
      this.askProgress();
    });
  }

  private askProgress(): void {
    if (!this.progressSafe || this.progressAsked || !this.requests) return;
    this.progressAsked = this.requests.push(create(WatchRequestSchema, { requestUnion: { case: "progressRequest", value: {} } }));
  }

  private async run(): Promise<void> {
    let delay = RETRY_MIN_MS;
    let needSnapshot = true;
    let lastFailure = "";
    while (!this.stopped.signal.aborted) {
      try {
        if (!needSnapshot) {
          const resume = await resumable(this.up, this.key, this.rangeEnd, this.rev, this.header?.clusterId);
          this.progressSafe = resume.progressSafe;
          needSnapshot = !resume.ok;
        }
        if (needSnapshot && !this.stopped.signal.aborted) await this.snapshot();
        needSnapshot = false;
        const outcome = this.stopped.signal.aborted ? "ended" : await this.watch();
        if (outcome === "compacted") needSnapshot = true;
        if (outcome !== "failed") { delay = RETRY_MIN_MS; lastFailure = ""; }
      } catch (err) {
        // Said once per kind of failure, not on every retry (auth on without credentials fails every 10 s).
        if (!this.stopped.signal.aborted && String(err) !== lastFailure) this.log?.warn({ prefix: this.iv.start, err: String(err) }, "watch cache: sync failed; etcd answers until it is back");
        lastFailure = String(err);
        if (err instanceof TooLarge) delay = TOO_LARGE_RETRY_MS;
      }
      this.goOff();
      await pause(delay, this.stopped.signal);
      delay = Math.min(delay * 2, RETRY_MAX_MS);
      this.reconnects++;
    }
  }

  private async snapshot(): Promise<void> {
    const snap = await takeSnapshot(this.up, this.key, this.rangeEnd, this.store, this.limits.maxStoreBytes);
    this.progressSafe = snap.progressSafe;
    this.header = snap.header;
    this.rev = snap.rev;
    this.history = new History(this.limits, snap.rev);
    this.snapshots++;
  }

  /** One upstream watch from rev+1, until it ends: "compacted" (rev is gone), "ended" or "failed". */
  private async watch(): Promise<"compacted" | "ended" | "failed"> {
    const requests = new PushQueue<WatchRequest>(64);
    this.requests = requests;
    requests.push(create(WatchRequestSchema, {
      requestUnion: { case: "createRequest", value: { key: this.key, rangeEnd: this.rangeEnd, startRevision: this.rev + 1n, prevKv: true, progressNotify: true, watchId: WATCH_ID } },
    }));
    const abort = new AbortController();
    const onStop = () => abort.abort();
    this.stopped.signal.addEventListener("abort", onStop, { once: true });
    // hasleader: a member that loses its leader ends the watch ("no leader"), so the cache goes off
    // instead of serving a partitioned member's silence.
    const caller: CallerContext = { requestHeader: new Headers({ hasleader: "true" }), signal: abort.signal, timeoutMs: () => undefined };
    const clusterId = this.header?.clusterId;
    try {
      for await (const r of this.up.stream(caller, (c, o) => c.watch.watch(requests, o))) {
        // Another cluster behind the same endpoints: nothing the cache holds is its.
        if (r.header && clusterId && r.header.clusterId !== clusterId) return "compacted";
        if (r.header) this.header = r.header;
        if (r.created) {
          if (r.canceled) return r.cancelReason.includes(EtcdMessages.compacted) ? "compacted" : "failed";
          this.ready = true;
          continue;
        }
        if (r.canceled) return r.compactRevision > 0n ? "compacted" : "ended";
        if (r.events.length > 0) this.apply(r);
        else this.progress(r);
      }
      return "ended";
    } catch (err) {
      if (!this.stopped.signal.aborted) this.log?.warn({ prefix: this.iv.start, err: String(err) }, "watch cache: upstream watch broke; catching up from its revision");
      return "failed";
    } finally {
      this.stopped.signal.removeEventListener("abort", onStop);
      abort.abort();
      requests.close();
      if (this.requests === requests) this.requests = undefined;
      this.progressAsked = false;
    }
  }

  private apply(r: WatchResponse): void {
    const now = Date.now();
    let batch: Event[] = [];
    let batchRev = -1n;
    for (const e of r.events) {
      const kv = e.kv!;
      if (kv.modRevision !== batchRev && batch.length > 0) {
        this.history.append(batchRev, batch, now);
        batch = [];
      }
      batchRev = kv.modRevision;
      batch.push(e);
      if (e.type === Event_EventType.DELETE) this.store.delete(keyString(kv.key));
      else this.store.set(keyString(kv.key), ownCopy(kv));
    }
    if (batch.length > 0) this.history.append(batchRev, batch, now);
    this.rev = batchRev;
    this.memo.clear();
    this.settleWaiters();
    this.each([...this.listeners], (l) => l.events(r, this.rev));
  }

  private progress(r: WatchResponse): void {
    const rev = r.header?.revision ?? 0n;
    const answer = r.watchId === -1n;
    if (answer) this.progressAsked = false;
    const answered = answer ? this.answerWaiters.splice(0) : [];
    // Our watch's own notification is ordered with its events on every version; an answer to a progress
    // request only where etcd orders it (file comment).
    if ((!answer || this.progressSafe) && rev > this.rev) this.rev = rev;
    this.history.trim(Date.now());
    this.settleWaiters();
    for (const w of answered) w();
    if (this.waiters.length > 0) this.askProgress();

  }

  private tick(): void {
    if (this.ready) this.each([...this.listeners], (l) => l.tick(this.rev));
  }

  /** A throwing listener (a client stream's bug) fails alone, logged; the cache and the others go on. */
  private each(listeners: CacheListener[], fn: (l: CacheListener) => void): void {
    for (const l of listeners) {
      try {
        fn(l);
      } catch (err) {
        this.log?.error({ prefix: this.iv.start, err: String(err) }, "watch cache: a listener failed");
      }
    }
  }

  private settleWaiters(): void {
    if (this.waiters.length === 0) return;
    const due = this.waiters.filter((w) => w.rev <= this.rev);
    if (due.length === 0) return;
    this.waiters = this.waiters.filter((w) => w.rev > this.rev);
    for (const w of due) w.resolve(true);
  }

  private goOff(): void {
    this.ready = false;
    this.memo.clear();
    for (const w of this.waiters.splice(0)) w.resolve(false);
    for (const w of this.answerWaiters.splice(0)) w();
    const listeners = [...this.listeners];
    this.listeners.clear();
    this.each(listeners, (l) => l.lost());
  }
}
