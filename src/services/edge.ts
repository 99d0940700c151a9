/**
 * etcdedge.v1.Edge: etcd's Watch and LeaseKeepAlive in shapes a browser can call (one request in; a server
 * stream or a single answer out), answered with etcd's own messages.
 *
 * The seam: the service asks an `EdgeStreams` for the watch responses and the keep-alive answer.
 * `upstreamEdgeStreams(up)` opens one upstream stream per call; the coalescing watch and lease hubs in
 * upstream/ implement the same interface, and routes.ts then passes them instead. Nothing else changes.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { Edge } from "../../gen/etcdedge/v1/edge_pb.js";
import {
  WatchRequestSchema,
  type LeaseKeepAliveRequest,
  type LeaseKeepAliveResponse,
  type WatchCreateRequest,
  type WatchResponse,
} from "../../gen/etcdserverpb/rpc_pb.js";
import { EtcdMessages } from "../upstream/errors.js";
import type { CallerContext, Upstream } from "../upstream/upstream.js";

/** Where the Edge service's answers come from: one upstream stream per call today, the hubs later. */
export interface EdgeStreams {
  /** etcd's responses to one watch create request, starting with the created (or canceled) one. */
  watch(caller: CallerContext, create: WatchCreateRequest): AsyncIterable<WatchResponse>;
  /** etcd's answer to one keep-alive of one lease (TTL <= 0: the lease is gone, as etcd says it). */
  keepAliveOnce(caller: CallerContext, req: LeaseKeepAliveRequest): Promise<LeaseKeepAliveResponse>;
}

/**
 * How long one keep-alive may wait for etcd when the client set no deadline: etcdctl's default command
 * timeout, since a renewal goes through the leader. Past it the client gets DeadlineExceeded, not a hang.
 */
const KEEPALIVE_TIMEOUT_MS = 5_000;

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

/** The direct form: each call opens its own upstream stream to etcd and closes it when the call ends. */
export function upstreamEdgeStreams(up: Upstream): EdgeStreams {
  return {
    async *watch(caller, createRequest) {
      const done = new AbortController();
      // The request side stays open until the call ends: a half-close would end the watch on etcd's proxy
      // and on the hubs, so no form of this RPC relies on etcd keeping a half-closed watch alive.
      async function* requests() {
        yield create(WatchRequestSchema, { requestUnion: { case: "createRequest", value: createRequest } });
        await untilAborted(done.signal, caller.signal);
      }
      try {
        yield* up.stream(caller, (c, o) => c.watch.watch(requests(), o));
      } finally {
        done.abort();
      }
    },
    async keepAliveOnce(caller, req) {
      const done = new AbortController();
      async function* requests() {
        yield req;
        await untilAborted(done.signal, caller.signal);
      }
      const bounded: CallerContext = {
        requestHeader: caller.requestHeader,
        signal: caller.signal,
        timeoutMs: () => Math.min(caller.timeoutMs() ?? KEEPALIVE_TIMEOUT_MS, KEEPALIVE_TIMEOUT_MS),
      };
      try {
        // The first answer is the one; leaving the loop ends the upstream stream.
        for await (const res of up.stream(bounded, (c, o) => c.lease.leaseKeepAlive(requests(), o))) return res;
      } finally {
        done.abort();
      }
      throw new ConnectError("etcd ended the keep-alive stream without an answer", Code.Unavailable);
    },
  };
}

/** Resolves when any of `signals` aborts; its listeners go with it. */
function untilAborted(...signals: AbortSignal[]): Promise<void> {
  if (signals.some((s) => s.aborted)) return Promise.resolve();
  return new Promise((resolve) => {
    const onAbort = () => {
      for (const s of signals) s.removeEventListener("abort", onAbort);
      resolve();
    };
    for (const s of signals) s.addEventListener("abort", onAbort, { once: true });
  });
}
