/**
 * GET /version as etcd answers it: {"etcdserver":"3.4.23","etcdcluster":"3.4.0"}. APISIX probes it as a
 * heartbeat and python etcd3gw picks its API prefix from it, so it reports the etcd behind the proxy,
 * asked through the same Maintenance.Status handler a gRPC client reaches.
 */
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { Hono } from "hono";
import { Maintenance } from "../../../gen/etcdserverpb/rpc_pb.js";
import { gatewayError } from "./errors.js";
import { goJson } from "./json.js";
import { errorResponse, plainError } from "./response.js";

/**
 * The version of the etcd behind the proxy, asked once (Maintenance.Status) and kept; asked again after
 * a failure. The gateway's FailedPrecondition status depends on it (errors.ts).
 */
export function etcdVersion(transport: Transport): () => Promise<string | undefined> {
  let known: Promise<string | undefined> | undefined;
  return () => {
    known ??= transport.unary(Maintenance.method.status, undefined, 5000, undefined, {}).then((r) => r.message.version, () => {
      known = undefined;
      return undefined;
    });
    return known;
  };
}

export function versionRoutes(transport: Transport): Hono {
  const app = new Hono();
  app.get("/version", async (c) => {
    // Hono answers HEAD with the GET handler; etcd allows GET only.
    if (c.req.method !== "GET") return plainError(405, "Method Not Allowed", { allow: "GET" });
    try {
      const { message } = await transport.unary(Maintenance.method.status, c.req.raw.signal, undefined, undefined, {});
      if (!message.version) throw new ConnectError("etcd did not report its version", Code.Unavailable);
      return new Response(goJson({ etcdserver: message.version, etcdcluster: clusterVersion(message.version) }), { headers: { "content-type": "application/json" } });
    } catch (err) {
      return errorResponse(gatewayError(err));
    }
  });
  app.all("/version", (c) => (c.req.method === "OPTIONS" ? new Response(null, { status: 200 }) : plainError(405, "Method Not Allowed", { allow: "GET" })));
  return app;
}

/**
 * etcd reports the cluster version as major.minor.0 (the version every member supports). Status only has
 * the member's server version; behind one proxy of one cluster, its major.minor is the cluster's.
 */
function clusterVersion(server: string): string {
  const m = /^(\d+)\.(\d+)\./.exec(server);
  return m ? `${m[1]}.${m[2]}.0` : server;
}
