/**
 * http/: the Hono app (health, metrics, ui, gateway). Imports: services/, wire/, observe/.
 *
 * The Hono app for every request that is not an RPC: health, metrics, and 404 for the rest.
 */
import { Hono } from "hono";
import type { Logger } from "../observe/log.js";
import type { Metrics } from "../observe/metrics.js";
import type { HealthCheck } from "../services/health.js";
import { gatewayRoutes, type GatewayOptions } from "./gateway/paths.js";
import { healthRoutes } from "./health.js";
import { metricsRoutes } from "./metrics.js";
import { uiRoutes } from "./ui.js";

export interface AppOptions {
  /** The key browser's script (--ui); undefined: no /ui/ routes. */
  uiBundle?: string | undefined;
  /** etcd's JSON gateway (/v3/*, GET /version); undefined: not served. */
  gateway?: GatewayOptions | undefined;
}

export function createApp(check: HealthCheck, metrics: Metrics, log: Logger, o: AppOptions = {}): Hono {
  const app = new Hono();
  app.use(async (c, next) => {
    await next();
    metrics.httpRequests.inc({ route: c.req.routePath, code: String(c.res.status) });
  });
  app.route("/", healthRoutes(check, metrics));
  app.route("/", metricsRoutes(metrics));
  if (o.uiBundle !== undefined) app.route("/", uiRoutes(o.uiBundle));
  if (o.gateway !== undefined) app.route("/", gatewayRoutes(o.gateway));
  // Go's http.NotFound, byte for byte: etcd answers unknown paths so, and gateway clients see it.
  app.notFound(() => new Response("404 page not found\n", { status: 404, headers: { "content-type": "text/plain; charset=utf-8", "x-content-type-options": "nosniff" } }));
  app.onError((err, c) => {
    log.error({ err, path: c.req.path }, "http handler failed");
    return c.text("Internal Server Error\n", 500);
  });
  return app;
}
