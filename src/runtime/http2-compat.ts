/**
 * Let a handler see each HTTP/2 stream before node:http2's compat layer builds a request and a response
 * for it. The compat layer is one 'stream' listener that the server adds when a 'request' listener is
 * added (Node's lib/internal/http2/core.js, setupCompat; Deno and Bun carry the same code and showed the
 * same single "bound onServerStream" listener when probed); it is wrapped here so that a stream the
 * handler takes never reaches it. The profile of a cached Range under Node had the compat objects, their
 * listeners and header conversions at about a tenth of the proxy's CPU; under Deno and Bun the saving
 * measured 2-8%.
 *
 * If a runtime changes the shape (not exactly one 'stream' listener), nothing is wrapped and every stream
 * goes through the compat layer as before.
 */
import type * as http2 from "node:http2";

export type StreamTaker = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => boolean;

type StreamListener = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number, rawHeaders: string[]) => void;

/** Wraps the compat listener of `server` (a 'request' listener must be added first); false if it cannot. */
export function compatStreamsAfter(server: http2.Http2Server | http2.Http2SecureServer, take: StreamTaker): boolean {
  const listeners = server.listeners("stream") as StreamListener[];
  if (listeners.length !== 1) return false;
  const compat = listeners[0]!;
  server.removeListener("stream", compat);
  server.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number, rawHeaders: string[]) => {
    if (!take(stream, headers)) compat.call(server, stream, headers, flags, rawHeaders);
  });
  return true;
}
