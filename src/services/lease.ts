/**
 * etcdserverpb.Lease. LeaseKeepAlive streams share one upstream stream (upstream/lease-hub.ts); the unary
 * calls are forwarded. A revoke deletes the lease's keys, which the proxy cannot name, so it empties the
 * range cache as soon as etcd confirms it.
 */
import type { ServiceImpl } from "@connectrpc/connect";
import type { Lease } from "../../gen/etcdserverpb/rpc_pb.js";
import type { CoalescedKv } from "../upstream/coalesced-kv.js";
import type { LeaseHub } from "../upstream/lease-hub.js";
import type { Upstream } from "../upstream/upstream.js";

export function leaseService(up: Upstream, leases: LeaseHub, kv: CoalescedKv): ServiceImpl<typeof Lease> {
  return {
    leaseGrant: (req, ctx) => up.unary(ctx, (c, o) => c.lease.leaseGrant(req, o), { readOnly: false }),
    leaseRevoke: async (req, ctx) => {
      try {
        const res = await up.unary(ctx, (c, o) => c.lease.leaseRevoke(req, o), { readOnly: false });
        kv.changedAll(res.header?.revision);
        return res;
      } catch (err) {
        kv.changedAll(undefined);
        throw err;
      }
    },
    leaseKeepAlive: (requests, ctx) => leases.serve(requests, ctx.signal),
    leaseTimeToLive: (req, ctx) => up.unary(ctx, (c, o) => c.lease.leaseTimeToLive(req, o), { readOnly: true }),
    leaseLeases: (req, ctx) => up.unary(ctx, (c, o) => c.lease.leaseLeases(req, o), { readOnly: true }),
  };
}
