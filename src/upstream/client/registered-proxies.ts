/**
 * Every proxy registered under --resolver-prefix (registration.ts writes ours), followed as etcd's proxy
 * follows them for MemberList (proxy/grpcproxy/cluster.go through clientv3/naming/endpoints): one Range of
 * `<prefix>/`, then a watch from the revision after it. Entries are keyed by their etcd key, so a deleted
 * or expired registration leaves the list (etcd 3.4.23 keyed deletes by address and kept dead proxies
 * listed: PR #15907). When the watch breaks or is compacted, the Range and the watch start over after
 * 1 s (etcd's resolveRetryRate); the last list is served meanwhile.
 */
import { create } from "@bufbuild/protobuf";
import { WatchRequestSchema, type WatchRequest } from "../../../gen/etcdserverpb/rpc_pb.js";
import { Event_EventType } from "../../../gen/mvccpb/kv_pb.js";
import type { Logger } from "../../observe/log.js";
import type { CallerContext } from "../../wire/caller.js";
import { pause } from "./pause.js";
import { PushQueue } from "./push-queue.js";
import type { Upstream } from "./upstream.js";

/** etcd's resolveRetryRate: the Range and watch are started again at most once a second. */
const RETRY_INTERVAL_MS = 1_000;
/**
 * Registrations kept. Each is a few short strings; past this many, further keys are not listed (and a
 * warning says so once): a prefix shared with unrelated data must not grow the proxy without bound.
 */
const MAX_REGISTERED = 10_000;

export interface RegisteredProxy {
  /** The etcd key: `<prefix>/<addr>`. */
  key: string;
  /** The registered address, verbatim (MemberList's client URL). */
  addr: string;
  /** The hostname in the registration's metadata. */
  name: string;
}

export class RegisteredProxies {
  private readonly byKey = new Map<string, RegisteredProxy>();
  private readonly stopped = new AbortController();
  private readonly dir: Uint8Array;
  private warnedFull = false;
  /** Times the list was read whole (the first time and after every broken watch). */
  loads = 0;

  constructor(private readonly up: Upstream, prefix: string, private readonly log?: Logger) {
    this.dir = new TextEncoder().encode(`${prefix}/`);
  }

  start(): void {
    void this.loop();
  }

  close(): void {
    this.stopped.abort();
  }

  /** The registered proxies, ordered by key (etcd's proxy answers in map order, which is random). */
  members(): RegisteredProxy[] {
    return [...this.byKey.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  private async loop(): Promise<void> {
    while (!this.stopped.signal.aborted) {
      const started = Date.now();
      try {
        await this.follow();
      } catch (err) {
        if (!this.stopped.signal.aborted) this.log?.debug({ err: String(err) }, "watch of registered proxies broke");
      }
      await pause(Math.max(0, RETRY_INTERVAL_MS - (Date.now() - started)), this.stopped.signal);
    }
  }

  /** One Range of the prefix, then its watch until it ends. */
  private async follow(): Promise<void> {
    const caller: CallerContext = { requestHeader: new Headers(), signal: this.stopped.signal, timeoutMs: () => undefined };
    const rangeEnd = prefixEnd(this.dir);
    const res = await this.up.unary({ ...caller, timeoutMs: () => 5_000 }, (c, opt) => c.kv.range({ key: this.dir, rangeEnd, serializable: true }, opt), { readOnly: true });
    this.byKey.clear();
    for (const kv of res.kvs) this.put(kv.key, kv.value);
    this.loads++;
    // One create request, then nothing: the stream stays open (not half-closed) for as long as we follow.
    const feed = new PushQueue<WatchRequest>(1);
    feed.push(create(WatchRequestSchema, {
      requestUnion: { case: "createRequest", value: { key: this.dir, rangeEnd, startRevision: (res.header?.revision ?? 0n) + 1n } },
    }));
    try {
      for await (const w of this.up.stream(caller, (c, opt) => c.watch.watch(feed, opt))) {
        if (w.canceled || w.compactRevision > 0n) return;
        for (const ev of w.events) {
          if (!ev.kv) continue;
          if (ev.type === Event_EventType.DELETE) this.byKey.delete(new TextDecoder().decode(ev.kv.key));
          else this.put(ev.kv.key, ev.kv.value);
        }
      }
    } finally {
      feed.close();
    }
  }

  private put(keyBytes: Uint8Array, valueBytes: Uint8Array): void {
    const key = new TextDecoder().decode(keyBytes);
    const parsed = parseRegistration(new TextDecoder().decode(valueBytes));
    if (!parsed) {
      // Not a registration (etcd's endpoints manager skips it too, with a warning).
      this.byKey.delete(key);
      return;
    }
    if (!this.byKey.has(key) && this.byKey.size >= MAX_REGISTERED) {
      if (!this.warnedFull) this.log?.warn({ max: MAX_REGISTERED }, "too many registered proxies under --resolver-prefix; the rest are not listed");
      this.warnedFull = true;
      return;
    }
    this.byKey.set(key, { key, ...parsed });
  }
}

/**
 * `{"Op":0,"Addr":"...","Metadata":"{\"name\":\"...\"}"}` → addr and name. Metadata written by other
 * clientv3 users may be an object rather than a JSON string; a missing name is "".
 */
export function parseRegistration(text: string): { addr: string; name: string } | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== "object" || v === null) return undefined;
  const { Addr, Metadata } = v as { Addr?: unknown; Metadata?: unknown };
  if (typeof Addr !== "string" || Addr === "") return undefined;
  let meta: unknown = Metadata;
  if (typeof meta === "string") {
    try {
      meta = JSON.parse(meta);
    } catch {
      meta = undefined;
    }
  }
  const name = typeof meta === "object" && meta !== null && typeof (meta as { name?: unknown }).name === "string" ? (meta as { name: string }).name : "";
  return { addr: Addr, name };
}

/** The end of the range of keys starting with `prefix` (etcd's GetPrefixRangeEnd). */
function prefixEnd(prefix: Uint8Array): Uint8Array {
  const end = prefix.slice();
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i] = end[i]! + 1;
      return end.slice(0, i + 1);
    }
  }
  return new Uint8Array([0]);
}
