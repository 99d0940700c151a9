/** Every service on one ConnectRouter: the same handlers serve gRPC, gRPC-Web and Connect. */
import type { ConnectRouter } from "@connectrpc/connect";
import { Auth, Cluster, KV, Lease, Maintenance, Watch } from "../../gen/etcdserverpb/rpc_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { Election } from "../../gen/v3electionpb/v3election_pb.js";
import { Lock } from "../../gen/v3lockpb/v3lock_pb.js";
import type { Upstream } from "../upstream/upstream.js";
import { authService } from "./auth.js";
import { clusterService, type ClusterOptions } from "./cluster.js";
import { electionService } from "./election.js";
import { healthService } from "./health.js";
import { kvService } from "./kv.js";
import { leaseService } from "./lease.js";
import { lockService } from "./lock.js";
import { maintenanceService } from "./maintenance.js";
import { watchService } from "./watch.js";

export const ETCD_SERVICES = [KV, Watch, Lease, Cluster, Maintenance, Auth, Election, Lock] as const;

export function routes(up: Upstream, cluster: ClusterOptions): (router: ConnectRouter) => void {
  return (router) => {
    router.service(KV, kvService(up));
    router.service(Watch, watchService(up));
    router.service(Lease, leaseService(up));
    router.service(Cluster, clusterService(up, cluster));
    router.service(Maintenance, maintenanceService(up));
    router.service(Auth, authService(up));
    router.service(Election, electionService(up));
    router.service(Lock, lockService(up));
    router.service(Health, healthService(up, ETCD_SERVICES.map((s) => s.typeName)));
  };
}
