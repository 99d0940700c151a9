/**
 * gRPC-Web in binary (wire.md §4) for the fast unary path, over HTTP/1.1 and HTTP/2: the status goes in a
 * trailer frame at the end of the body (the trailers-only form in headers is allowed too, but browsers'
 * fetch exposes the body more reliably than headers through CORS).
 */
import { Code, type ConnectError } from "@connectrpc/connect";
import { trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import { grpcFrame, parseBinary, singleMessage, TRAILER_FLAG } from "../../wire/frame.js";
import { binaryOf } from "../../wire/shared-replies.js";
import { grpcStatus } from "../../wire/status.js";
import { grpcTimeout } from "../../wire/timeout.js";
import type { Res } from "./exchange.js";
import type { UnaryWire } from "./wire.js";

const CONTENT_TYPE = "application/grpc-web+proto";
const OK_TRAILER = webTrailer(undefined);

export const GRPC_WEB: UnaryWire = {
  protocol: "grpc-web",
  framing: 5,
  timeout: (headers) => grpcTimeout(headers["grpc-timeout"]),
  parse: (input, body) => parseBinary(input, singleMessage(body, Code.InvalidArgument)),
  ok(x, output, message) {
    const frame = grpcFrame(binaryOf(output, message));
    const res = x.res as Res;
    res.writeHead(200, { "content-type": CONTENT_TYPE, "content-length": frame.length + OK_TRAILER.length });
    res.end(Buffer.concat([frame, OK_TRAILER], frame.length + OK_TRAILER.length));
  },
  error(x, err) {
    const trailer = webTrailer(err);
    const res = x.res as Res;
    res.writeHead(200, { "content-type": CONTENT_TYPE, "content-length": trailer.length });
    res.end(trailer);
  },
};

/** gRPC-Web's trailer frame: the status as HTTP/1 header lines, with grpc-message as etcd encodes it. */
export function webTrailer(err: ConnectError | undefined): Buffer {
  return grpcFrame(trailerSerialize(new Headers(grpcStatus(err))), TRAILER_FLAG);
}
