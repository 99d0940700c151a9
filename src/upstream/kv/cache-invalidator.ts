/**
 * Keeps the range cache honest about writes that do not pass through this proxy (etcd's own proxy never
 * sees them: #14665). ONE upstream watch over the whole keyspace (key "\0", range_end "\0"), from the
 * current revision; every event drops the cache entries covering its key. One watch, however many entries
 * are cached, so etcd sees one watcher, and a direct write reaches the cache one watch delivery later
 * (milliseconds; the issue asks for 100 ms).
 *
 * The cache serves ONLY while this watch is live. When the watch is refused, breaks, is cancelled or falls
 * behind a compaction, the cache is emptied and bypassed (every read goes to etcd) until a new watch is
 * created; it then starts empty at the new watch's revision, so nothing from before the gap survives.
 *
 * Auth: the watch carries no caller's token (borrowing one would leak across users). With auth enabled,
 * etcd refuses it ("permission denied"), so the cache stays off and every read is checked by etcd itself.
 * etcd does not cancel a running watch when auth is switched on, so a probe every `authProbeMs` notices
 * that and restarts the watch, which is then refused. The probe is an Authenticate for a user that does
 * not exist: etcd answers "authentication is not enabled" while auth is off (and logs nothing), and
 * refuses the password once it is on. It is not a Range, so etcd's Range count shows only the cache's
 * misses, whatever the proxy's uptime. Until the probe runs,
 * a tokenless caller could still be served an entry etcd answered it a moment before auth went on: the
 * same staleness a serializable read of a follower that has not yet applied `auth enable` shows. That
 * window is bounded by `authProbeMs` plus one probe round trip (500 ms + a few ms; at most 500 ms + the
 * probe's 1 s timeout when etcd is slow to answer it), and exists only for `auth enable` done directly
 * on etcd: an AuthEnable through this proxy calls `authChanging` (services/auth.ts) before it is sent and
 * again when etcd has answered, before the answer goes back, so the client that enabled auth, and every
 * request after it, is never served a tokenless answer from the cache.
 */
import { create } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import { WatchRequestSchema, type WatchRequest } from "../../../gen/etcdserverpb/rpc_pb.js";
import { pointOf, type KeyInterval } from "../client/key-ranges.js";
import { PushQueue } from "../client/push-queue.js";
import type { CallerContext } from "../../wire/caller.js";
import type { Upstream } from "../client/upstream.js";
import { pause } from "../client/pause.js";

/** What the invalidation watch drives (RangeCache, plus the single-flight table in coalesced-kv.ts). */
export interface InvalidationSink {
  enable(rev: bigint): void;
  disable(): void;
  invalidate(iv: KeyInterval, rev: bigint): void;
  advance(rev: bigint): void;
}

export interface CacheInvalidatorOptions {
  /** First wait before re-creating a failed watch; doubles up to retryMaxMs. 250 ms: back quickly after a blip. */
  retryMinMs: number;
  /** 5 s: with auth on the watch is refused every time; one refused create per 5 s costs etcd nothing. */
  retryMaxMs: number;
  /** 500 ms: how long `auth enable` done directly on etcd can go unnoticed (see file comment). */
  authProbeMs: number;
}

export const DEFAULT_INVALIDATOR: CacheInvalidatorOptions = { retryMinMs: 250, retryMaxMs: 5000, authProbeMs: 500 };

const NUL = new Uint8Array([0]);

/**
 * The invalidators of each Upstream, so the Auth service can reach them through the Upstream it already
 * has (one per proxy; tests may build several). Entries are added by start() and removed by close().
 */
const byUpstream = new WeakMap<Upstream, Set<CacheInvalidator>>();

/**
 * Auth is being switched on through this proxy: every range cache on `up` stops serving now, and its
 * invalidation watch is re-created, which etcd refuses once auth is on (and accepts again, turning the
 * cache back on, if the AuthEnable failed). Called before AuthEnable is sent and once more when etcd has
 * answered, before the answer goes back: a watch created while the call was out (auth not yet applied)
 * is ended by the second call, so the cache cannot be left serving.
 */
export function authChanging(up: Upstream): void {
  for (const inv of byUpstream.get(up) ?? []) inv.authChanging();
}

export class CacheInvalidator {
  readonly options: CacheInvalidatorOptions;
  /** Watches created so far (1 + restarts), for tests and logs. */
  established = 0;
  private readonly stopped = new AbortController();
  private probing = false;
  /** The watch being created or live (watchOnce's), ended by authChanging. */
  private current: AbortController | undefined;

  constructor(private readonly up: Upstream, private readonly sink: InvalidationSink, o: Partial<CacheInvalidatorOptions> = {}) {
    this.options = { ...DEFAULT_INVALIDATOR, ...o };
  }

  start(): void {
    let set = byUpstream.get(this.up);
    if (!set) byUpstream.set(this.up, (set = new Set()));
    set.add(this);
    void this.loop();
  }

  close(): void {
    byUpstream.get(this.up)?.delete(this);
    this.stopped.abort();
  }

  /** See authChanging(): off now, and the watch starts over (refused if auth is on). */
  authChanging(): void {
    this.sink.disable();
    this.current?.abort();
  }

  private async loop(): Promise<void> {
    let delay = this.options.retryMinMs;
    while (!this.stopped.signal.aborted) {
      const wasLive = await this.watchOnce();
      this.sink.disable();
      if (wasLive) delay = this.options.retryMinMs;
      await pause(delay, this.stopped.signal);
      delay = Math.min(delay * 2, this.options.retryMaxMs);
    }
  }

  /** One watch, from create to its end. True if it was created (the cache was live for a while). */
  private async watchOnce(): Promise<boolean> {
    const abort = new AbortController();
    this.current = abort;
    const onStop = () => abort.abort();
    this.stopped.signal.addEventListener("abort", onStop, { once: true });
    // One create request, then nothing: the stream stays open (not half-closed) for as long as we watch.
    const feed = new PushQueue<WatchRequest>(1);
    feed.push(create(WatchRequestSchema, { requestUnion: { case: "createRequest", value: { key: NUL, rangeEnd: NUL, progressNotify: true } } }));
    const caller: CallerContext = { requestHeader: new Headers(), signal: abort.signal, timeoutMs: () => undefined };
    let live = false;
    let probe: ReturnType<typeof setInterval> | undefined;
    try {
      for await (const res of this.up.stream(caller, (c, o) => c.watch.watch(feed, o))) {
        // Ended (authChanging, close) while this response was already on its way: it must not enable.
        if (abort.signal.aborted) return live;
        if (!live) {
          // Refused (auth on and no credentials, or any other reason): stay off, try again later.
          if (!res.created || res.canceled) return false;
          live = true;
          this.established++;
          this.sink.enable(res.header?.revision ?? 0n);
          probe = setInterval(() => void this.probeAuth(abort), this.options.authProbeMs);
          (probe as { unref?: () => void }).unref?.();
          continue;
        }
        // Cancelled, or compacted past our position (compact_revision set): start over from now.
        if (res.canceled || res.compactRevision > 0n) return true;
        let last = 0n;
        for (const ev of res.events) {
          if (!ev.kv) continue;
          this.sink.invalidate(pointOf(ev.kv.key), ev.kv.modRevision);
          if (ev.kv.modRevision > last) last = ev.kv.modRevision;
        }
        // Events: every write up to the last event's revision has been seen (etcd delivers revisions in
        // order and whole). Without events (progress notify) the header revision says the same. An events
        // response's header is not used: a catch-up batch can carry a header beyond its last event.
        this.sink.advance(res.events.length > 0 ? last : res.header?.revision ?? 0n);
      }
      return live;
    } catch {
      return live;
    } finally {
      if (this.current === abort) this.current = undefined;
      if (probe !== undefined) clearInterval(probe);
      this.stopped.signal.removeEventListener("abort", onStop);
      abort.abort();
      feed.close();
    }
  }

  /**
   * Ends the watch when etcd's auth is on (switched on behind our back), and when etcd does not answer at
   * all: a connection that died silently (no RST, no keepalive pings configured) would otherwise leave the
   * watch quiet and the cache serving old values; this way it is off within `authProbeMs` + 1 s.
   */
  private async probeAuth(watch: AbortController): Promise<void> {
    if (this.probing) return; // a slow probe is not stacked on by the next tick
    this.probing = true;
    try {
      await this.up.unary(undefined, (c, o) => c.auth.authenticate({ name: PROBE_USER, password: "" }, { ...o, timeoutMs: 1000 }), { readOnly: true });
      watch.abort(); // a token: auth is on (someone created the user)
    } catch (err) {
      const msg = ConnectError.from(err).rawMessage;
      // "authentication is not enabled": as it should be. Another etcd error (no leader, timed out) is
      // still an answer over a live connection and says nothing about auth. Anything else is no answer.
      if (msg === AUTH_FAILED || !msg.startsWith("etcdserver: ")) watch.abort();
    } finally {
      this.probing = false;
    }
  }
}

/** A name no one uses; if it does exist, the empty password is refused all the same. */
const PROBE_USER = "etcd-edge-auth-probe";
const AUTH_FAILED = "etcdserver: authentication failed, invalid user ID or password";

