/**
 * http/gateway/: etcd's JSON gateway, files named as in services/. Imports: as http/.
 *
 * etcd's HTTP/JSON gateway (grpc-gateway in etcd) on our port: every /v3/* path of etcd's protos, each
 * forwarded to the same RPC handler a gRPC client reaches, plus GET /version. Plain Hono routes, so it
 * answers over HTTP/1.1, h2c and TLS alike (etcd's own gateway does HTTP/1.1 only on cleartext).
 */
import type { DescMethod, DescMethodStreaming, DescMethodUnary } from "@bufbuild/protobuf";
import { Hono } from "hono";
import type { Routes, UnaryMethod } from "../../services/registry.js";
import { authPaths } from "./auth.js";
import { jsonLimitFor } from "./body.js";
import { clusterPaths } from "./cluster.js";
import { electionPaths } from "./election.js";
import { directUnary, inProcessTransport, transportUnary } from "./in-process.js";
import { kvPaths } from "./kv.js";
import { leasePaths } from "./lease.js";
import { lockPaths } from "./lock.js";
import { maintenancePaths } from "./maintenance.js";
import { plainError } from "./response.js";
import { streamCall } from "./stream.js";
import { unaryCall, type NodeExchange } from "./unary.js";
import { etcdVersion, versionRoutes } from "./version.js";
import { watchPaths } from "./watch.js";

/** A gateway path below the prefix, and the RPC it calls. */
export interface GatewayPath {
  path: string;
  method: DescMethod;
}

export interface GatewayOptions {
  /** The routes the RPC listener serves (services/registry.ts). */
  routes: Routes;
  /** The unary implementations of those routes by request path (services/registry.ts): called directly. */
  unary: ReadonlyMap<string, UnaryMethod>;
  /** --max-send-bytes: the largest request message, as for gRPC clients; JSON bodies get twice that. */
  maxSendBytes: number;
}

/**
 * `/v3` (etcd 3.4+), and `/v3beta`, which etcd 3.4 to 3.6 rewrite to `/v3` and python etcd3gw picks for
 * etcd 3.3. `/v3alpha` (etcd 3.2) is 404, as on etcd 3.4.
 */
const PREFIXES = ["/v3", "/v3beta"] as const;

export const GATEWAY_PATHS: readonly GatewayPath[] = [
  ...kvPaths, ...watchPaths, ...leasePaths, ...clusterPaths, ...maintenancePaths, ...authPaths, ...electionPaths, ...lockPaths,
];

/** etcd answers OPTIONS on every path with an empty 200 (its CORS wrapper); CORS headers are the listener's. */
const optionsOk = () => new Response(null, { status: 200 });

export function gatewayRoutes(o: GatewayOptions): Hono {
  const transport = inProcessTransport(o.routes, o.maxSendBytes);
  const maxJsonBytes = jsonLimitFor(o.maxSendBytes);
  const version = etcdVersion(transport);
  const app = new Hono();
  for (const { path, method } of GATEWAY_PATHS) {
    // DescMethod does not narrow on methodKind; etcd has no client-streaming RPC, so the rest stream.
    let call: (req: Request, node: NodeExchange | undefined) => Promise<Response>;
    if (method.methodKind === "unary") {
      const direct = o.unary.get(`/${method.parent.typeName}/${method.name}`);
      const unary = method as DescMethodUnary;
      call = unaryCall(unary, direct ? directUnary(direct, o.maxSendBytes) : transportUnary(unary, transport), maxJsonBytes, version);
    } else {
      const stream = streamCall(method as DescMethodStreaming, transport, maxJsonBytes);
      call = (req) => stream(req);
    }
    for (const prefix of PREFIXES) {
      app.post(prefix + path, (c) => call(c.req.raw, nodeExchange(c.env)));
      app.options(prefix + path, optionsOk);
      // grpc-gateway: a known path with another method is 405, in Go's plain-text error form.
      app.all(prefix + path, () => plainError(405, "Method Not Allowed"));
    }
  }
  for (const prefix of PREFIXES) {
    app.options(`${prefix}/*`, optionsOk);
    // grpc-gateway's own 404 under its prefix ("Not Found"), unlike Go's mux elsewhere ("404 page not found").
    app.all(`${prefix}/*`, () => plainError(404, "Not Found"));
  }
  app.route("/", versionRoutes(transport));
  return app;
}

/** The Node request and response @hono/node-server passes in env, or undefined under another adapter. */
function nodeExchange(env: unknown): NodeExchange | undefined {
  const e = env as { incoming?: unknown; outgoing?: unknown } | undefined;
  if (!e || typeof e.incoming !== "object" || typeof e.outgoing !== "object" || e.incoming === null || e.outgoing === null) return undefined;
  if (typeof (e.incoming as { resume?: unknown }).resume !== "function") return undefined;
  return e as NodeExchange;
}
