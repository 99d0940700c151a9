/**
 * etcdserverpb.Lease on etcd's gateway paths. Revoke, TimeToLive and Leases answer on /v3/lease/* and on
 * the older /v3/kv/lease/* that APISIX and python etcd3gw call. Keep-alive answers one line per request
 * object and ends when the body ends and etcd has answered.
 */
import { Lease } from "../../../gen/etcdserverpb/rpc_pb.js";
import type { GatewayPath } from "./paths.js";

export const leasePaths: GatewayPath[] = [
  { path: "/lease/grant", method: Lease.method.leaseGrant },
  { path: "/lease/revoke", method: Lease.method.leaseRevoke },
  { path: "/kv/lease/revoke", method: Lease.method.leaseRevoke },
  { path: "/lease/keepalive", method: Lease.method.leaseKeepAlive },
  { path: "/lease/timetolive", method: Lease.method.leaseTimeToLive },
  { path: "/kv/lease/timetolive", method: Lease.method.leaseTimeToLive },
  { path: "/lease/leases", method: Lease.method.leaseLeases },
  { path: "/kv/lease/leases", method: Lease.method.leaseLeases },
];
