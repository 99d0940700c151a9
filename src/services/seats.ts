/**
 * --fairness: what a unary call costs, in seats toward etcd (upstream/client/fairness.ts), and whose flow
 * it is charged to. Installed on UnaryCall (invoke.ts: the fast paths and the gateway; listener/fairness.ts
 * for connect-es's handlers) only when fairness is on, so with it off a call pays one check of an unset hook. The charge rides on the call's requestHeader (wire/flow.ts) down to
 * Upstream.unary, where it is paid only if the call really goes to etcd: a cache hit pays nothing.
 *
 * Costs, as API Priority and Fairness sizes a list by its objects: a Range takes one seat per 100 keys
 * it is expected to return (the count of a recent answer for the same range, bounded by its limit;
 * count-only: one seat), a Txn one seat per op of its longer branch, everything else one seat; at most
 * MAX_SEATS (APF's default maximum width, 10). Health checks and Status are exempt.
 */
import type { Message } from "@bufbuild/protobuf";
import type { RangeRequest, RangeResponse, TxnRequest } from "../../gen/etcdserverpb/rpc_pb.js";
import { flowOf, setCharge, type FlowSource, type Peer } from "../wire/flow.js";

/** The widest call: 10 seats, APF's default for its widest list requests. */
export const MAX_SEATS = 10;
/** Keys per seat of a Range: 100, as APF counts objects per seat of a list. */
export const KEYS_PER_SEAT = 100;
/** Ranges whose last count is remembered: 4,096 (a few hundred KiB); the oldest goes first. */
const RECENT_MAX = 4096;

/** Exempt: never charged, never queued (a probe must see etcd, not the proxy's queues). */
const EXEMPT = new Set(["grpc.health.v1.Health", "etcdserverpb.Maintenance/Status"]);

/** Charges one unary call: its metadata (the charge's key), its connection, its method and its request. */
export type Charger = (requestHeader: Headers, peer: Peer | undefined, m: { grpc_service: string; grpc_method: string }, input: Message) => void;

/** The hook for UnaryCall.charge: names the call's flow from `sources` and sets its charge. */
export function charger(sources: readonly FlowSource[]): Charger {
  const counts = new RecentCounts();
  return (requestHeader, peer, m, input) => {
    const { grpc_service: service, grpc_method: method } = m;
    if (EXEMPT.has(service) || EXEMPT.has(`${service}/${method}`)) return;
    const flow = flowOf(requestHeader, peer, sources);
    if (service === "etcdserverpb.KV" && method === "Range") {
      const req = input as RangeRequest;
      const key = req.countOnly ? "" : rangeKey(req);
      setCharge(requestHeader, {
        flow,
        seats: req.countOnly ? 1 : rangeSeats(counts.get(key), req.limit),
        answered: req.countOnly ? undefined : (res) => counts.set(key, Number((res as RangeResponse).count)),
      });
      return;
    }
    const seats = service === "etcdserverpb.KV" && method === "Txn" ? txnSeats(input as TxnRequest) : 1;
    setCharge(requestHeader, { flow, seats });
  };
}

/** Seats of a Range expected to find `count` keys (undefined: not seen lately, one seat) with `limit`. */
export function rangeSeats(count: number | undefined, limit: bigint): number {
  if (count === undefined) return 1;
  const keys = limit > 0n && Number(limit) < count ? Number(limit) : count;
  return Math.min(MAX_SEATS, Math.max(1, Math.ceil(keys / KEYS_PER_SEAT)));
}

export function txnSeats(req: TxnRequest): number {
  return Math.min(MAX_SEATS, Math.max(1, req.success.length, req.failure.length));
}

function rangeKey(req: RangeRequest): string {
  return `${Buffer.from(req.key).toString("latin1")}\0${Buffer.from(req.rangeEnd).toString("latin1")}`;
}

/** The last count seen per range, bounded: insertion order is age, the oldest is dropped first. */
class RecentCounts {
  private readonly map = new Map<string, number>();

  get(key: string): number | undefined {
    return this.map.get(key);
  }

  set(key: string, count: number): void {
    this.map.delete(key);
    this.map.set(key, count);
    if (this.map.size > RECENT_MAX) this.map.delete(this.map.keys().next().value!);
  }
}
