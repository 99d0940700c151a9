/**
 * etcdserverpb.Watch. Every client stream goes through the watch hub, which shares upstream watches
 * between clients (watch N→1) while answering each client as etcd would; a client half-close leaves the
 * watches running, as on etcd (etcd's own proxy ends the RPC instead, #18230).
 */
import type { ServiceImpl } from "@connectrpc/connect";
import type { Watch } from "../../gen/etcdserverpb/rpc_pb.js";
import type { WatchHub } from "../upstream/watch-hub.js";

export function watchService(hub: WatchHub): ServiceImpl<typeof Watch> {
  return {
    watch: (requests, ctx) => hub.watch(ctx, requests),
  };
}
