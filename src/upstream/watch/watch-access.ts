/**
 * What etcd checks when it creates a watch, asked for a watcher that joins a shared upstream watch instead
 * (and so never reaches etcd's create): may this identity read the range, and is the start revision
 * compacted. Both go to etcd as one serializable, count-only Range with the caller's token and the start
 * revision, which etcd answers with the same auth check and the same compaction bound as a watch create.
 * (etcd's proxy asks the permission half the same way, but not the compaction half: a joiner starting
 * below the compaction got events instead of etcd's cancel.)
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { ResponseHeader } from "../../../gen/etcdserverpb/rpc_pb.js";
import { EtcdMessages } from "../../wire/errors.js";
import { keyString } from "../client/key-ranges.js";
import type { CallerContext } from "../../wire/caller.js";
import type { Upstream } from "../client/upstream.js";
import type { WatcherSpec } from "./watcher.js";

/** A check gives up after this; the client stream then fails with the error etcd gave. */
const CHECK_TIMEOUT_MS = 5_000;

/** etcd's auth refusals, which it reports on a watch as created+canceled with a cancel_reason. */
const AUTH_REFUSALS = new Set<string>([
  EtcdMessages.invalidAuthToken,
  EtcdMessages.permissionDenied,
  "etcdserver: user name is empty",
  "etcdserver: revision of auth store is old",
]);

export type Check =
  /** Allowed; `header` is etcd's current one (undefined for a future start revision). */
  | { kind: "ok"; header: ResponseHeader | undefined }
  /** cancel_reason exactly as etcd words it: the gRPC status text ("rpc error: code = ... desc = ..."). */
  | { kind: "refused"; reason: string }
  /** The start revision is compacted: the watcher needs its own upstream watch, and etcd's cancel. */
  | { kind: "compacted" };

export class WatchAccess {
  /**
   * Checks in flight, shared by identical asks (same range and revision), so a burst of joins costs one
   * Range. Bounded by the distinct ranges being joined at once; entries go when etcd answers.
   */
  private readonly inFlight = new Map<string, Promise<Check>>();

  constructor(private readonly up: Upstream, private readonly headers: Headers, private readonly noteHeader: (h: ResponseHeader) => void) {}

  /**
   * Asked with the key and range_end etcd's watch checks: a from-key watch (range_end "\0") is checked as
   * its one key, as etcd 3.4's watch does; `revision` 0 asks about permission only.
   */
  check(spec: WatcherSpec, revision: bigint): Promise<Check> {
    const fromKey = spec.rangeEnd.length === 1 && spec.rangeEnd[0] === 0;
    const rangeEnd = fromKey ? new Uint8Array(0) : spec.rangeEnd;
    const id = `${keyString(spec.key)}\u0100${keyString(rangeEnd)}\u0100${revision}`;
    let p = this.inFlight.get(id);
    if (!p) {
      const caller: CallerContext = { requestHeader: this.headers, signal: new AbortController().signal, timeoutMs: () => CHECK_TIMEOUT_MS };
      p = this.up.unary(caller, (c, o) => c.kv.range({ key: spec.key, rangeEnd, revision, serializable: true, countOnly: true, limit: 1n }, o), { readOnly: true })
        .then((r): Check => {
          if (r.header) this.noteHeader(r.header);
          return { kind: "ok", header: r.header };
        }, (err: unknown): Check => {
          const ce = ConnectError.from(err);
          if (AUTH_REFUSALS.has(ce.rawMessage)) return { kind: "refused", reason: `rpc error: code = ${Code[ce.code]} desc = ${ce.rawMessage}` };
          if (ce.rawMessage === EtcdMessages.compacted) return { kind: "compacted" };
          if (ce.rawMessage === EtcdMessages.futureRev) return { kind: "ok", header: undefined }; // a future start is allowed
          throw ce;
        })
        .finally(() => this.inFlight.delete(id));
      this.inFlight.set(id, p);
    }
    return p;
  }
}
