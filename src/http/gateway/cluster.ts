/** etcdserverpb.Cluster on etcd's gateway paths (member list is the proxy's own answer, as over gRPC). */
import { Cluster } from "../../../gen/etcdserverpb/rpc_pb.js";
import type { GatewayPath } from "./paths.js";

export const clusterPaths: GatewayPath[] = [
  { path: "/cluster/member/add", method: Cluster.method.memberAdd },
  { path: "/cluster/member/remove", method: Cluster.method.memberRemove },
  { path: "/cluster/member/update", method: Cluster.method.memberUpdate },
  { path: "/cluster/member/list", method: Cluster.method.memberList },
  { path: "/cluster/member/promote", method: Cluster.method.memberPromote },
];
