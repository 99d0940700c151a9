/** GET /metrics: the proxy's own registry in Prometheus text format (etcd's 3.4 proxy shows etcd's instead). */
import { Hono } from "hono";
import type { Metrics } from "../observe/metrics.js";

export function metricsRoutes(metrics: Metrics): Hono {
  const app = new Hono();
  app.get("/metrics", async (c) => {
    const body = await metrics.registry.metrics();
    return c.body(body, 200, { "Content-Type": metrics.registry.contentType });
  });
  return app;
}
