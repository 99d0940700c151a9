/**
 * Which handler a request goes to. Unary calls and the Watch and LeaseKeepAlive streams of native gRPC take
 * the lean paths (unary.ts, grpc-bidi.ts); everything else of our RPCs goes to the Connect handlers (gRPC,
 * gRPC-Web and Connect from one set). A request that speaks an RPC protocol but names no RPC we serve
 * gets Unimplemented in its own protocol; everything else is the Hono app's (health, metrics, 404).
 */
import type * as http from "node:http";
import type * as http2 from "node:http2";
import type { RequestHandler } from "./server.js";

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;

/**
 * `lean` may take a request first (unary.ts, grpc-bidi.ts) and says whether it did; the
 * rest goes to the Connect handlers, then to the app.
 */
export function route(rpc: (fallback: RequestHandler) => RequestHandler, app: RequestHandler, lean?: (req: Req, res: Res) => boolean): RequestHandler {
  const connect = rpc((req, res) => {
    const contentType = String(req.headers["content-type"] ?? "");
    if (contentType.startsWith("application/grpc") || contentType.startsWith("application/connect+") || req.headers["connect-protocol-version"]) {
      unimplemented(req, res, contentType);
      return;
    }
    app(req, res);
  });
  if (!lean) return connect;
  return (req, res) => {
    if (!lean(req, res)) connect(req, res);
  };
}

function unimplemented(req: Req, res: Res, contentType: string): void {
  const path = (req.url ?? "").split("?")[0];
  const message = `unknown service or method ${path}`;
  // Drain the request body so that HTTP/1.1 keep-alive connections stay usable.
  req.resume();
  if (contentType.startsWith("application/grpc")) {
    // Trailers-only response: status in the only HEADERS frame (wire.md §3; gRPC-Web allows it too).
    const headers = { "content-type": contentType.startsWith("application/grpc-web") ? contentType : "application/grpc", "grpc-status": "12", "grpc-message": encodeURIComponent(message) };
    if ("stream" in res) {
      // HTTP/2: END_STREAM must be on the HEADERS frame itself, or gRPC clients wait for trailers.
      // stream.respond bypasses the compat layer: carry over what was set with setHeader (CORS, cors.ts).
      res.stream.respond({ ":status": 200, ...res.getHeaders(), ...headers }, { endStream: true });
    } else {
      res.writeHead(200, headers);
      res.end();
    }
    return;
  }
  res.writeHead(501, { "content-type": "application/json" });
  res.end(JSON.stringify({ code: "unimplemented", message }));
}
