/** etcdserverpb.KV on etcd's gateway paths (the google.api.http options of etcd's rpc.proto). */
import { KV } from "../../../gen/etcdserverpb/rpc_pb.js";
import type { GatewayPath } from "./paths.js";

export const kvPaths: GatewayPath[] = [
  { path: "/kv/range", method: KV.method.range },
  { path: "/kv/put", method: KV.method.put },
  { path: "/kv/deleterange", method: KV.method.deleteRange },
  { path: "/kv/txn", method: KV.method.txn },
  { path: "/kv/compaction", method: KV.method.compact },
];
