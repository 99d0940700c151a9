/**
 * services/: one file per etcd service, the registry and invoke. Imports: upstream/, wire/, observe/.
 *
 * Every service we serve, built once (services/: imports upstream/, wire/ and observe/ only; never
 * listener/ or http/). The same objects serve gRPC, gRPC-Web and Connect, the fast paths and the JSON
 * gateway (registry.ts).
 */
import type { ConnectRouter } from "@connectrpc/connect";
import { Auth, Cluster, KV, Lease, Maintenance, Watch } from "../../gen/etcdserverpb/rpc_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { Edge } from "../../gen/etcdedge/v1/edge_pb.js";
import { Election } from "../../gen/v3electionpb/v3election_pb.js";
import { Lock } from "../../gen/v3lockpb/v3lock_pb.js";
import type { CoalescedKv } from "../upstream/kv/coalesced-kv.js";
import type { LeaseHub } from "../upstream/lease/lease-hub.js";
import type { Upstream } from "../upstream/client/upstream.js";
import type { WatchHub } from "../upstream/watch/watch-hub.js";
import { authService } from "./auth.js";
import { clusterService, type ClusterOptions } from "./cluster.js";
import { edgeService } from "./edge.js";
import { electionService } from "./election.js";
import { healthService } from "./health.js";
import { kvService } from "./kv.js";
import { leaseKeepAliveBatches, leaseService } from "./lease.js";
import { lockService } from "./lock.js";
import { maintenanceService } from "./maintenance.js";
import { watchBatches, watchService } from "./watch.js";
import { registry, type BidiMethod, type Registry } from "./registry.js";
import type { Draining } from "./draining.js";

export const ETCD_SERVICES = [KV, Watch, Lease, Cluster, Maintenance, Auth, Election, Lock] as const;

/** The coalescing parts that sit on the upstream (built once in proxy.ts, shared by every connection). */
export interface Coalescing {
  kv: CoalescedKv;
  leases: LeaseHub;
  watches: WatchHub;
}

export interface Services extends Registry {
  /** Watch and LeaseKeepAlive in the batch form of the native-gRPC fast path. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  bidi: readonly BidiMethod<any, any>[];
}

/** `draining`: when it begins, every open stream of every service ends with Unavailable (draining.ts). */
export function etcdServices(up: Upstream, cluster: ClusterOptions, coalescing: Coalescing, draining?: Draining): Services {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const bidi: BidiMethod<any, any>[] = [watchBatches(coalescing.watches), leaseKeepAliveBatches(coalescing.leases)];
  return {
    ...registry(routes(up, cluster, coalescing), ETCD_SERVICES, draining),
    bidi: draining ? bidi.map((m) => ({ ...m, serve: (caller, requests) => draining.stream(m.serve(caller, requests)) })) : bidi,
  };
}

function routes(up: Upstream, cluster: ClusterOptions, coalescing: Coalescing): (router: ConnectRouter) => void {
  return (router) => {
    router.service(KV, kvService(up, coalescing.kv));
    router.service(Watch, watchService(coalescing.watches));
    router.service(Lease, leaseService(up, coalescing.leases, coalescing.kv));
    router.service(Cluster, clusterService(up, cluster));
    router.service(Maintenance, maintenanceService(up));
    router.service(Auth, authService(up));
    router.service(Election, electionService(up));
    router.service(Lock, lockService(up));
    router.service(Edge, edgeService({ keepAliveOnce: (c, r) => coalescing.leases.keepAliveOnce(c, r), watch: (c, r) => coalescing.watches.watchOne(c, r) }));
    router.service(Health, healthService(up, ETCD_SERVICES.map((s) => s.typeName)));
  };
}
