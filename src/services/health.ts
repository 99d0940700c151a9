/**
 * grpc.health.v1.Health, for load balancers and Kubernetes gRPC probes. It answers from the same check as
 * GET /health: SERVING while etcd answers a linearizable read.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { HealthCheckResponseSchema, HealthCheckResponse_ServingStatus as Status, type Health } from "../../gen/grpc/health/v1/health_pb.js";
import type { HealthResult, Upstream } from "../upstream/client/upstream.js";

/** Is etcd answering? The one check behind /health and grpc.health.v1 (Upstream.check). */
export type HealthCheck = () => Promise<HealthResult>;
export type { HealthResult };
import { pause } from "../upstream/client/pause.js";

/** How often a Watch re-checks etcd; a change is sent at once, an unchanged status is not repeated. */
const WATCH_INTERVAL_MS = 5000;

export function healthService(up: Upstream, services: readonly string[]): ServiceImpl<typeof Health> {
  const known = new Set(["", ...services]);
  const status = async () => ((await up.check()).ok ? Status.SERVING : Status.NOT_SERVING);
  return {
    async check(req) {
      if (!known.has(req.service)) throw new ConnectError(`unknown service ${req.service}`, Code.NotFound);
      return create(HealthCheckResponseSchema, { status: await status() });
    },
    async *watch(req, ctx) {
      if (!known.has(req.service)) {
        // The protocol says: answer SERVICE_UNKNOWN and keep the stream, the service may appear later.
        yield create(HealthCheckResponseSchema, { status: Status.SERVICE_UNKNOWN });
        await pause(Infinity, ctx.signal);
        return;
      }
      let last: Status | undefined;
      while (!ctx.signal.aborted) {
        const now = await status();
        if (now !== last) yield create(HealthCheckResponseSchema, { status: now });
        last = now;
        await pause(WATCH_INTERVAL_MS, ctx.signal);
      }
    },
  };
}

