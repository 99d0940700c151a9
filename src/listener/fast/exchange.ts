/**
 * One call's two ends, whichever objects carry them: the compat request/response of node:http and
 * node:http2, or a bare HTTP/2 stream taken before the compat layer (runtime.ts streamsFirst). The fast
 * paths and the protocol files (grpc.ts, grpc-web.ts, connect.ts) see only this shape.
 */
import type * as http from "node:http";
import type * as http2 from "node:http2";

export type Req = http.IncomingMessage | http2.Http2ServerRequest;
export type Res = http.ServerResponse | http2.Http2ServerResponse;

export interface Exchange {
  headers: http.IncomingHttpHeaders;
  /** The request body: 'data' chunks, then 'end'. */
  body: NodeJS.EventEmitter;
  /** Emits 'close' when the client has gone (or the exchange is over). */
  closing: NodeJS.EventEmitter;
  gone(): boolean;
  answered(): boolean;
  /** Exactly one of the two is set. */
  res?: Res;
  stream?: http2.ServerHttp2Stream;
}

export function compatExchange(req: Req, res: Res): Exchange {
  return {
    headers: req.headers,
    body: req,
    // HTTP/2: the stream closes (RST_STREAM); HTTP/1.1: the response closes before it was written.
    closing: "stream" in res ? res.stream : res,
    gone: () => ("stream" in res ? res.stream.destroyed : res.destroyed),
    answered: () => res.headersSent,
    res,
  };
}

export function streamExchange(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): Exchange {
  // Errors surface as 'close' (the client reset the stream); an unhandled 'error' would end the process.
  stream.on("error", () => {});
  return {
    headers,
    body: stream,
    closing: stream,
    gone: () => stream.destroyed,
    answered: () => stream.headersSent,
    stream,
  };
}
