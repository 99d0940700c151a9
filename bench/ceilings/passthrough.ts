/**
 * Ceiling: a node:http2 server that pipes every stream to etcd over one HTTP/2 connection and pipes the
 * reply back, headers, data and trailers, without decoding a frame. What forwarding alone costs on Node:
 * a proxy that decodes, checks and re-encodes can only be slower than this (unless it answers itself).
 */
import * as http2 from "node:http2";
import { ceilingArgs } from "./args.js";

const { host, port, etcdUrl } = ceilingArgs(process.argv.slice(2));
const { NGHTTP2_CANCEL, NGHTTP2_NO_ERROR, NGHTTP2_FLAG_END_STREAM } = http2.constants;

/** One connection to etcd, as etcd's proxy keeps one; reopened when it goes away. */
let upstream: http2.ClientHttp2Session | undefined;
function session(): http2.ClientHttp2Session {
  if (!upstream || upstream.closed || upstream.destroyed) {
    const s = http2.connect(etcdUrl, { maxSessionMemory: 256 });
    s.on("error", () => {});
    s.on("close", () => { if (upstream === s) upstream = undefined; });
    upstream = s;
  }
  return upstream;
}

/**
 * Copies DATA from one stream to the other with backpressure. Plain listeners rather than pipe(): pipe
 * sets up more machinery per stream than the forwarding itself costs.
 */
function forward(from: http2.Http2Stream, to: http2.Http2Stream): void {
  from.on("data", (chunk: Buffer) => {
    if (!to.write(chunk)) {
      from.pause();
      to.once("drain", () => from.resume());
    }
  });
  from.on("end", () => { if (!to.closed) to.end(); });
}

/** HTTP/2 request headers to send on: the client's, minus pseudo-headers Node sets for the new connection. */
function forwardHeaders(h: http2.IncomingHttpHeaders): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) {
    if (k === ":authority" || k === ":scheme") continue;
    if (v !== undefined) out[k] = v;
  }
  return out;
}

/** Response headers to send back: without the pseudo-headers except :status. */
function replyHeaders(h: http2.IncomingHttpHeaders): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) {
    if (k.startsWith(":") && k !== ":status") continue;
    if (v !== undefined) out[k] = v;
  }
  return out;
}

const server = http2.createServer({ maxSessionMemory: 256 });
server.on("sessionError", () => {});
server.on("stream", (stream, headers) => {
  stream.on("error", () => {});
  let up: http2.ClientHttp2Stream;
  try {
    up = session().request(forwardHeaders(headers), { endStream: false });
  } catch (err) {
    stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": "14", "grpc-message": encodeURIComponent(`pass-through: ${(err as Error).message}`) }, { endStream: true });
    return;
  }
  up.on("error", () => {});
  let trailers: http2.OutgoingHttpHeaders | undefined;
  forward(stream, up);
  up.on("response", (h, flags) => {
    if (stream.closed) return;
    // Trailers-only reply (an error, as etcd sends them): headers and status in one frame.
    if ((flags ?? 0) & NGHTTP2_FLAG_END_STREAM || h["grpc-status"] !== undefined) {
      stream.respond(replyHeaders(h), { endStream: true });
      return;
    }
    stream.respond(replyHeaders(h), { waitForTrailers: true });
    forward(up, stream);
  });
  up.on("trailers", (h) => { trailers = replyHeaders(h); });
  stream.on("wantTrailers", () => {
    stream.sendTrailers(trailers ?? { "grpc-status": "13", "grpc-message": "pass-through: etcd ended the stream without trailers" });
  });
  // A reset on one side resets the other: a cancelled watch at the client cancels it at etcd.
  up.on("close", () => { if (!stream.closed && up.rstCode !== undefined && up.rstCode !== NGHTTP2_NO_ERROR) stream.close(up.rstCode); });
  stream.on("close", () => { if (!up.closed) up.close(NGHTTP2_CANCEL); });
});
server.listen(port, host, () => process.stderr.write(`pass-through ceiling listening on ${host}:${port}\n`));
process.on("SIGTERM", () => process.exit(0));
