/**
 * etcdedge.v1.Edge: etcd's Watch and LeaseKeepAlive in shapes a browser can call (one request in; a server
 * stream or a single answer out), answered with etcd's own messages.
 *
 * The service asks an `EdgeStreams` for the watch responses and the keep-alive answer: the coalescing
 * watch and lease hubs, so browsers share upstream watches and keep-alives with every other client.
 */
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { Edge } from "../../gen/etcdedge/v1/edge_pb.js";
import {
  type LeaseKeepAliveRequest,
  type LeaseKeepAliveResponse,
  type WatchCreateRequest,
  type WatchResponse,
} from "../../gen/etcdserverpb/rpc_pb.js";
import { EtcdMessages } from "../wire/errors.js";
import type { CallerContext } from "../wire/caller.js";

/** Where the Edge service's answers come from: the watch and lease hubs (routes.ts). */
export interface EdgeStreams {
  /** etcd's responses to one watch create request, starting with the created (or canceled) one. */
  watch(caller: CallerContext, create: WatchCreateRequest): AsyncIterable<WatchResponse>;
  /** etcd's answer to one keep-alive of one lease (TTL <= 0: the lease is gone, as etcd says it). */
  keepAliveOnce(caller: CallerContext, req: LeaseKeepAliveRequest): Promise<LeaseKeepAliveResponse>;
}

export function edgeService(streams: EdgeStreams): ServiceImpl<typeof Edge> {
  return {
    async *watch(req, ctx) {
      // Backpressure, not a buffer: the next upstream response is read only after this one was written
      // to the client, so a slow browser slows its own upstream stream (HTTP/2 flow control) and nothing
      // queues here.
      for await (const res of streams.watch(ctx, req)) {
        yield res;
        // etcd ended this watch (compacted start revision, permission, ...); nothing more comes on it.
        if (res.canceled) return;
      }
    },
    async leaseKeepAlive(req, ctx) {
      const res = await streams.keepAliveOnce(ctx, req);
      // clientv3's KeepAliveOnce turns etcd's TTL <= 0 into ErrLeaseNotFound; a unary caller gets the same.
      if (res.TTL <= 0n) throw new ConnectError(EtcdMessages.leaseNotFound, Code.NotFound);
      return res;
    },
  };
}
