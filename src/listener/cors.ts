/**
 * CORS for every route (RPCs and the HTTP app alike), so a page from another origin can call the proxy
 * over gRPC-Web or Connect. Off unless `--cors-allowed-origins` names origins: then a preflight from an
 * allowed origin is answered here, and every response to an allowed origin says so and exposes the
 * headers that carry gRPC and Connect status, which a browser would otherwise hide from the client.
 */
import type * as http from "node:http";
import type * as http2 from "node:http2";
import { cors as connectCors } from "@connectrpc/connect";
import type { RequestHandler } from "./server.js";

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;

/**
 * Request headers a page may send: connect-es's list for the three protocols, plus the metadata etcd
 * reads (`token` as clientv3 sends it, `authorization`, `hasleader`), so that auth works from a browser.
 */
const ALLOWED_HEADERS = [...connectCors.allowedHeaders, "Token", "Authorization", "Hasleader"].join(", ");
/** Methods: POST for every RPC, GET for Connect GET requests and /health, /metrics. */
const ALLOWED_METHODS = [...new Set([...connectCors.allowedMethods, "GET", "POST"])].join(", ");
/** grpc-status, grpc-message, grpc-status-details-bin and Connect's encoding headers (connect-es's list). */
const EXPOSED_HEADERS = connectCors.exposedHeaders.join(", ");
/**
 * How long a browser may reuse a preflight answer: 2 h, Chromium's cap (Firefox allows a day), so a page
 * that makes many calls pays for one preflight.
 */
const PREFLIGHT_MAX_AGE_S = 7200;

/** `allowed`: exact origins, or ["*"]; empty returns `next` unchanged (no CORS headers at all). */
export function withCors(allowed: readonly string[], next: RequestHandler): RequestHandler {
  if (allowed.length === 0) return next;
  const anyOrigin = allowed.includes("*");
  const origins = new Set(allowed.map((o) => o.toLowerCase()));
  return (req, res) => {
    const origin = header(req, "origin");
    if (origin === undefined) return next(req, res);
    const isAllowed = anyOrigin || origins.has(origin.toLowerCase());
    const isPreflight = req.method === "OPTIONS" && header(req, "access-control-request-method") !== undefined;
    if (isPreflight) {
      preflight(req, res, isAllowed ? (anyOrigin ? "*" : origin) : undefined);
      return;
    }
    if (isAllowed) {
      res.setHeader("Access-Control-Allow-Origin", anyOrigin ? "*" : origin);
      res.setHeader("Access-Control-Expose-Headers", EXPOSED_HEADERS);
    }
    // The answer depends on Origin whenever a list decides, so caches must keep one per origin.
    if (!anyOrigin) res.setHeader("Vary", "Origin");
    next(req, res);
  };
}

function preflight(req: Req, res: Res, allowOrigin: string | undefined): void {
  // A preflight has no body, but drain whatever came so an HTTP/1.1 connection stays usable.
  req.resume();
  if (allowOrigin === undefined) {
    // No Access-Control-Allow-Origin: the browser refuses the real request and says why in its console.
    res.writeHead(403, { "content-type": "text/plain; charset=utf-8", vary: "Origin" });
    res.end("origin not allowed by --cors-allowed-origins\n");
    return;
  }
  const headers: Record<string, string> = {
    "access-control-allow-origin": allowOrigin,
    "access-control-allow-methods": ALLOWED_METHODS,
    "access-control-allow-headers": ALLOWED_HEADERS,
    "access-control-max-age": String(PREFLIGHT_MAX_AGE_S),
    vary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
  };
  // Chromium's Private Network Access: a page on a public address calling a proxy on a private one asks
  // first. The operator allowed this origin, so the answer is yes.
  if (header(req, "access-control-request-private-network") === "true") headers["access-control-allow-private-network"] = "true";
  res.writeHead(204, headers);
  res.end();
}

function header(req: Req, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
