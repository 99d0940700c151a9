/**
 * GET /health, answered as etcd answers it: {"health":"true"} with 200 while etcd answers a linearizable
 * read within 1 s, else 503 with {"health":"false","reason":"..."}; beside those two, "endpoint" (the etcd
 * endpoint calls go to) and "down" (endpoints found unreachable, probed every 2 s). Unlike etcd's proxy it is served over
 * HTTP/1.1, h2c and TLS+HTTP/2 alike.
 */
import { Hono } from "hono";
import type { Metrics } from "../observe/metrics.js";
import type { HealthCheck } from "../services/health.js";

export function healthRoutes(check: HealthCheck, metrics: Metrics): Hono {
  const app = new Hono();
  app.get("/health", async (c) => {
    const { ok, reason, endpoint, down } = await check();
    metrics.healthChecks.inc({ result: ok ? "success" : "failure" });
    // etcd's two fields first and unchanged; then which endpoint calls go to and which are down.
    const where = endpoint === undefined ? {} : { endpoint, down: down ?? [] };
    return c.json(ok ? { health: "true", reason: "", ...where } : { health: "false", reason, ...where }, ok ? 200 : 503);
  });
  app.all("/health", (c) => c.text("Method Not Allowed", 405, { Allow: "GET" }));
  return app;
}
