/** etcdserverpb.Lease: forwarded to etcd; LeaseKeepAlive streams through as a bidi stream. */
import type { ServiceImpl } from "@connectrpc/connect";
import type { Lease } from "../../gen/etcdserverpb/rpc_pb.js";
import type { Upstream } from "../upstream/upstream.js";

export function leaseService(up: Upstream): ServiceImpl<typeof Lease> {
  return {
    leaseGrant: (req, ctx) => up.unary(ctx, (c, o) => c.lease.leaseGrant(req, o), { readOnly: false }),
    leaseRevoke: (req, ctx) => up.unary(ctx, (c, o) => c.lease.leaseRevoke(req, o), { readOnly: false }),
    leaseKeepAlive: (requests, ctx) => up.stream(ctx, (c, o) => c.lease.leaseKeepAlive(requests, o)),
    leaseTimeToLive: (req, ctx) => up.unary(ctx, (c, o) => c.lease.leaseTimeToLive(req, o), { readOnly: true }),
    leaseLeases: (req, ctx) => up.unary(ctx, (c, o) => c.lease.leaseLeases(req, o), { readOnly: true }),
  };
}
