/**
 * What etcd must say before the cache answers a Range: a count-only Range of the same keys, with the
 * caller's own metadata (token, authorization, hasleader) and the caller's revision and consistency.
 * One small request answers every question at once, exactly as etcd would for the full read:
 * - may this caller read these keys (etcd's permission error otherwise, the caller gets it as is);
 * - which revision the read is at: a linearizable one reads the leader's committed revision through
 *   raft (the quorum read Kubernetes' consistent reads from cache make), a serializable one the member's;
 * - a past revision compacted or in the future: etcd's own error;
 * - how many keys the range holds there: the cache's answer must have the same count, or etcd answers.
 *
 * Readers that arrive together share one check: callers with the same identity, keys, revision and
 * consistency that arrive in the same I/O turn. A check already sent is never shared with a reader that
 * arrived after it left: a linearizable read must see every write acknowledged before it began.
 */
import { setImmediate } from "node:timers";
import type { RangeRequest, RangeResponse } from "../../../gen/etcdserverpb/rpc_pb.js";
import { callerIdentity, callerMetadata, type CallerContext } from "../../wire/caller.js";
import type { Upstream } from "../client/upstream.js";

/** A check gives up after this (etcd's own default request timeout is 5 s too); the readers get the error. */
const CHECK_TIMEOUT_MS = 5_000;

export class ReadChecks {
  /** Checks being gathered in this I/O turn, not sent yet. Gone once sent: bounded by one turn's readers. */
  private readonly gathering = new Map<string, Promise<RangeResponse>>();
  sent = 0;
  shared = 0;

  constructor(private readonly up: Upstream) {}

  check(ctx: CallerContext, req: RangeRequest): Promise<RangeResponse> {
    const headers = callerMetadata(ctx.requestHeader);
    const id = [callerIdentity(headers), req.serializable ? "s" : "l", req.revision, req.key.join(","), req.rangeEnd.join(",")].join("\u0100");
    const gathering = this.gathering.get(id);
    if (gathering) {
      this.shared++;
      return gathering;
    }
    const p = new Promise<RangeResponse>((resolve, reject) => {
      setImmediate(() => {
        this.gathering.delete(id);
        this.sent++;
        const caller: CallerContext = { requestHeader: headers, signal: new AbortController().signal, timeoutMs: () => CHECK_TIMEOUT_MS };
        this.up.unary(caller, (c, o) => c.kv.range({ key: req.key, rangeEnd: req.rangeEnd, revision: req.revision, serializable: req.serializable, countOnly: true }, o), { readOnly: true })
          .then(resolve, reject);
      });
    });
    this.gathering.set(id, p);
    return p;
  }
}
