/**
 * etcdserverpb.KV. Range goes through the range cache and single-flight, writes invalidate the cache as
 * etcd acknowledges them (upstream/coalesced-kv.ts); Compact is forwarded as is.
 */
import type { ServiceImpl } from "@connectrpc/connect";
import type { KV } from "../../gen/etcdserverpb/rpc_pb.js";
import type { CoalescedKv } from "../upstream/kv/coalesced-kv.js";
import type { Upstream } from "../upstream/client/upstream.js";

export function kvService(up: Upstream, kv: CoalescedKv): ServiceImpl<typeof KV> {
  return {
    range: (req, ctx) => kv.range(ctx, req),
    put: (req, ctx) => kv.put(ctx, req),
    deleteRange: (req, ctx) => kv.deleteRange(ctx, req),
    txn: (req, ctx) => kv.txn(ctx, req),
    // Compaction changes no current value: cached revision-0 answers stay right.
    compact: (req, ctx) => up.unary(ctx, (c, o) => c.kv.compact(req, o), { readOnly: false }),
  };
}
