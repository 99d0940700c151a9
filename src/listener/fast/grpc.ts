/** Native gRPC (HTTP/2 only: it needs trailers) for the fast paths: a unary answer, an error, a bidi stream's frames. */
import type { DescMessage, Message } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import type * as http from "node:http";
import type * as http2 from "node:http2";
import { grpcFrame, parseBinary, singleMessage } from "../../wire/frame.js";
import { isIdentity } from "../protocol.js";
import { binaryOf } from "../../wire/shared-replies.js";
import { GRPC_OK, respondTrailersOnly } from "../../wire/status.js";
import { grpcTimeout } from "../../wire/timeout.js";
import type { UnaryWire } from "./wire.js";

export const GRPC_CONTENT_TYPE = "application/grpc";
const CONTENT_TYPE_HEADER = { "content-type": GRPC_CONTENT_TYPE } as const;
/** For stream.respond, which takes the pseudo-header too (compat writeHead must not get it). */
export const GRPC_RESPONSE_HEADERS = { ":status": 200, ...CONTENT_TYPE_HEADER } as const;

/** True for a native gRPC request the fast paths serve: POST, HTTP/2, protobuf, uncompressed. */
export function isFastGrpc(method: string | undefined, httpVersionMajor: number, headers: http.IncomingHttpHeaders): boolean {
  const contentType = headers["content-type"];
  return method === "POST" && httpVersionMajor === 2 && (contentType === GRPC_CONTENT_TYPE || contentType === "application/grpc+proto") && isIdentity(headers["grpc-encoding"]);
}

export const GRPC: UnaryWire = {
  protocol: "grpc",
  framing: 5,
  timeout: (headers) => grpcTimeout(headers["grpc-timeout"]),
  parse: (input, body) => parseBinary(input, singleMessage(body, Code.InvalidArgument)),
  ok(x, output, message) {
    if (x.stream) return grpcStreamOk(x.stream, output, message);
    // Through the compat response: it owns the stream's wantTrailers handler and sends these trailers.
    const res = x.res as http2.Http2ServerResponse;
    res.writeHead(200, CONTENT_TYPE_HEADER);
    res.addTrailers(GRPC_OK);
    res.end(grpcFrame(binaryOf(output, message)));
  },
  error(x, err) {
    // stream.respond bypasses the compat layer, so what was set with setHeader (CORS, cors.ts) is carried
    // over by hand.
    if (x.stream) return respondTrailersOnly(x.stream, GRPC_CONTENT_TYPE, err);
    const res = x.res as http2.Http2ServerResponse;
    respondTrailersOnly(res.stream, GRPC_CONTENT_TYPE, err, res.getHeaders());
  },
};

function grpcStreamOk(stream: http2.ServerHttp2Stream, output: DescMessage, message: Message): void {
  stream.respond(GRPC_RESPONSE_HEADERS, { waitForTrailers: true });
  stream.once("wantTrailers", () => stream.sendTrailers(GRPC_OK));
  stream.end(grpcFrame(binaryOf(output, message)));
}
