/**
 * etcdserverpb.Maintenance on etcd's gateway paths. /maintenance/hash is Hash: etcd 3.4 also bound HashKV
 * there, but the first binding wins, so clients always got Hash. HashKV and Downgrade have their etcd 3.5
 * paths; against an etcd 3.4 they answer 501 (Unimplemented) where etcd 3.4's gateway says 404.
 */
import { Maintenance } from "../../../gen/etcdserverpb/rpc_pb.js";
import type { GatewayPath } from "./paths.js";

export const maintenancePaths: GatewayPath[] = [
  { path: "/maintenance/alarm", method: Maintenance.method.alarm },
  { path: "/maintenance/status", method: Maintenance.method.status },
  { path: "/maintenance/defragment", method: Maintenance.method.defragment },
  { path: "/maintenance/hash", method: Maintenance.method.hash },
  { path: "/maintenance/hashkv", method: Maintenance.method.hashKV },
  { path: "/maintenance/snapshot", method: Maintenance.method.snapshot },
  { path: "/maintenance/transfer-leadership", method: Maintenance.method.moveLeader },
  { path: "/maintenance/downgrade", method: Maintenance.method.downgrade },
];
