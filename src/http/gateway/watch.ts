/**
 * etcdserverpb.Watch on /v3/watch: the body is a stream of WatchRequest objects (create, cancel,
 * progress), the answer a chunked stream of WatchResponse lines that stays open after the body ends.
 */
import { Watch } from "../../../gen/etcdserverpb/rpc_pb.js";
import type { GatewayPath } from "./paths.js";

export const watchPaths: GatewayPath[] = [
  { path: "/watch", method: Watch.method.watch },
];
