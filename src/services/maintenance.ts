/** etcdserverpb.Maintenance: forwarded; Snapshot streams chunk by chunk, never buffering the file. */
import type { ServiceImpl } from "@connectrpc/connect";
import type { Maintenance } from "../../gen/etcdserverpb/rpc_pb.js";
import type { Upstream } from "../upstream/client/upstream.js";

export function maintenanceService(up: Upstream): ServiceImpl<typeof Maintenance> {
  return {
    alarm: (req, ctx) => up.unary(ctx, (c, o) => c.maintenance.alarm(req, o), { readOnly: false }),
    status: (req, ctx) => up.unary(ctx, (c, o) => c.maintenance.status(req, o), { readOnly: true }),
    defragment: (req, ctx) => up.unary(ctx, (c, o) => c.maintenance.defragment(req, o), { readOnly: false }),
    hash: (req, ctx) => up.unary(ctx, (c, o) => c.maintenance.hash(req, o), { readOnly: true }),
    hashKV: (req, ctx) => up.unary(ctx, (c, o) => c.maintenance.hashKV(req, o), { readOnly: true }),
    // Backpressure: the next chunk is read from etcd only once the client took the last one.
    snapshot: (req, ctx) => up.stream(ctx, (c, o) => c.maintenance.snapshot(req, o)),
    moveLeader: (req, ctx) => up.unary(ctx, (c, o) => c.maintenance.moveLeader(req, o), { readOnly: false }),
    downgrade: (req, ctx) => up.unary(ctx, (c, o) => c.maintenance.downgrade(req, o), { readOnly: false }),
  };
}
