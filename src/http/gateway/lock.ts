/** v3lockpb.Lock on etcd's gateway paths; /lock/lock blocks until acquired or the Grpc-Timeout passes. */
import { Lock } from "../../../gen/v3lockpb/v3lock_pb.js";
import type { GatewayPath } from "./paths.js";

export const lockPaths: GatewayPath[] = [
  { path: "/lock/lock", method: Lock.method.lock },
  { path: "/lock/unlock", method: Lock.method.unlock },
];
