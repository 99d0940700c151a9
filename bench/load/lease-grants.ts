/** Leases for the keep-alive workloads, granted and revoked straight at etcd (set-up, not measured). */
import type * as http2 from "node:http2";
import { unaryAsync } from "./grpc-raw.js";
import { leaseGrantId, leaseGrantRequest, leaseRevokeRequest, PATH } from "./messages.js";
import { forEachLimited } from "./sessions.js";

/** Grants in flight at once: enough to take a second or two for 10,000, few enough not to queue at etcd. */
const IN_FLIGHT = 64;

export async function grantLeases(etcd: http2.ClientHttp2Session, count: number, ttlSeconds: number): Promise<bigint[]> {
  const ids = new Array<bigint>(count);
  const req = leaseGrantRequest(ttlSeconds);
  await forEachLimited(ids, IN_FLIGHT, async (_, i) => { ids[i] = leaseGrantId(await unaryAsync(etcd, PATH.leaseGrant, req)); });
  return ids;
}

/**
 * Revokes what the run granted, so no lease outlives it: etcd's proxy keeps keeping a lease alive for up
 * to its TTL after its clients left, which would load etcd during the next workload. Best effort.
 */
export async function revokeLeases(etcd: http2.ClientHttp2Session, ids: bigint[]): Promise<void> {
  await forEachLimited(ids, IN_FLIGHT, async (id) => { await unaryAsync(etcd, PATH.leaseRevoke, leaseRevokeRequest(id)).catch(() => {}); });
}
