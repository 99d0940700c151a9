/** The Hono app for every request that is not an RPC: health, metrics, and 404 for the rest. */
import { Hono } from "hono";
import type { Metrics } from "../observe/metrics.js";
import type { Upstream } from "../upstream/upstream.js";
import { healthRoutes } from "./health.js";
import { metricsRoutes } from "./metrics.js";

export function createApp(up: Upstream, metrics: Metrics): Hono {
  const app = new Hono();
  app.use(async (c, next) => {
    await next();
    metrics.httpRequests.inc({ route: c.req.routePath, code: String(c.res.status) });
  });
  app.route("/", healthRoutes(up, metrics));
  app.route("/", metricsRoutes(metrics));
  app.notFound((c) => c.text("404 page not found\n", 404));
  app.onError((err, c) => {
    console.error("etcd-edge: http handler failed:", err);
    return c.text("Internal Server Error\n", 500);
  });
  return app;
}
