/**
 * etcdserverpb.Watch. The client's request stream is handed to etcd as it is, so a client half-close
 * reaches etcd as a half-close, and etcd keeps the watch running (etcd's own proxy ends the RPC instead).
 */
import type { ServiceImpl } from "@connectrpc/connect";
import type { Watch } from "../../gen/etcdserverpb/rpc_pb.js";
import type { Upstream } from "../upstream/upstream.js";

export function watchService(up: Upstream): ServiceImpl<typeof Watch> {
  return {
    watch: (requests, ctx) => up.stream(ctx, (c, o) => c.watch.watch(requests, o)),
  };
}
