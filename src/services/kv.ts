/** etcdserverpb.KV: forwarded to etcd through the upstream. */
import type { ServiceImpl } from "@connectrpc/connect";
import type { KV } from "../../gen/etcdserverpb/rpc_pb.js";
import type { Upstream } from "../upstream/upstream.js";

export function kvService(up: Upstream): ServiceImpl<typeof KV> {
  return {
    range: (req, ctx) => up.unary(ctx, (c, o) => c.kv.range(req, o), { readOnly: true }),
    put: (req, ctx) => up.unary(ctx, (c, o) => c.kv.put(req, o), { readOnly: false }),
    deleteRange: (req, ctx) => up.unary(ctx, (c, o) => c.kv.deleteRange(req, o), { readOnly: false }),
    txn: (req, ctx) => up.unary(ctx, (c, o) => c.kv.txn(req, o), { readOnly: false }),
    compact: (req, ctx) => up.unary(ctx, (c, o) => c.kv.compact(req, o), { readOnly: false }),
  };
}
