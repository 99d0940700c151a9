/**
 * How one unary call looks on the wire in each protocol the lean unary path serves (wire.md §2-§4):
 * where the message is in the request body, where the timeout is, and how an answer or an error is
 * written. Error bodies and gRPC-Web trailers use connect-es's own protocol helpers, so a lean answer is
 * byte for byte what the Connect handlers would send.
 *
 * Only the identity encoding and binary gRPC/gRPC-Web are here; compressed bodies, gRPC-Web text and
 * JSON, and Connect GET requests stay with the Connect handlers (wire.md: rarely used, never hot).
 */
import { fromJsonString, toJsonString, type DescMessage, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, errorToJsonBytes, parseContentType as parseConnectType, parseTimeout as parseConnectTimeout } from "@connectrpc/connect/protocol-connect";
import { parseContentType as parseGrpcWebType, setTrailerStatus, trailerFlag, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import type * as http from "node:http";
import type * as http2 from "node:http2";
import { assertUncompressed, grpcFrame, parseBinary } from "../upstream/grpc-frame.js";
import { binaryOf } from "../upstream/shared-replies.js";

type Res = http.ServerResponse | http2.Http2ServerResponse;

export type WireProtocol = "grpc" | "grpc-web" | "connect";

export interface UnaryWire {
  protocol: WireProtocol;
  /** Bytes of framing around the one message (the 5-byte gRPC prefix); the size limit adds this. */
  framing: number;
  /** The call's deadline in ms from now, undefined for none; a ConnectError for a malformed header. */
  timeoutMs(headers: http.IncomingHttpHeaders): number | undefined | ConnectError;
  /** The request message from the whole body; a ConnectError (InvalidArgument) when it is not one. */
  parse(input: DescMessage, body: Buffer): Message;
  ok(res: Res, output: DescMessage, message: Message): void;
  error(res: Res, err: ConnectError): void;
}

/** The wire of a request this path serves, or undefined (the Connect handlers take it). */
export function wireOf(method: string | undefined, httpVersionMajor: number, headers: http.IncomingHttpHeaders): UnaryWire | undefined {
  if (method !== "POST") return undefined;
  const contentType = headers["content-type"];
  if (contentType === undefined) return undefined;
  if (contentType === "application/grpc" || contentType === "application/grpc+proto") {
    // Native gRPC needs HTTP/2 trailers; over HTTP/1.1 the Connect handlers give the proper refusal.
    if (httpVersionMajor !== 2 || !identity(headers["grpc-encoding"])) return undefined;
    return GRPC;
  }
  if (contentType.startsWith("application/grpc-web")) {
    const type = parseGrpcWebType(contentType);
    if (!type || type.text || !type.binary || !identity(headers["grpc-encoding"])) return undefined;
    return GRPC_WEB;
  }
  const type = parseConnectType(contentType);
  if (!type || type.stream || !identity(headers["content-encoding"])) return undefined;
  return type.binary ? CONNECT_PROTO : CONNECT_JSON;
}

function identity(encoding: string | string[] | undefined): boolean {
  return encoding === undefined || encoding === "identity";
}

const GRPC: UnaryWire = {
  protocol: "grpc",
  framing: 5,
  timeoutMs: (headers) => grpcTimeout(headers["grpc-timeout"]),
  parse: (input, body) => parseBinary(input, unwrap(body)),
  ok(res, output, message) {
    // Through the compat response: it owns the stream's wantTrailers handler and sends these trailers.
    res.writeHead(200, GRPC_CONTENT_TYPE);
    (res as http2.Http2ServerResponse).addTrailers(GRPC_OK_TRAILERS);
    res.end(grpcFrame(binaryOf(output, message)));
  },
  error(res, err) {
    // stream.respond bypasses the compat layer, so what was set with setHeader (CORS, cors.ts) is carried
    // over by hand.
    const stream = (res as http2.Http2ServerResponse).stream;
    if (!stream.destroyed && !stream.headersSent) grpcStreamError(stream, err, res.getHeaders());
  },
};

const GRPC_CONTENT_TYPE = { "content-type": "application/grpc" } as const;
/** For stream.respond, which takes the pseudo-header too (compat writeHead must not get it). */
const GRPC_HEADERS = { ":status": 200, ...GRPC_CONTENT_TYPE } as const;
const GRPC_OK_TRAILERS = { "grpc-status": "0" } as const;

/** Native gRPC's answer on a bare HTTP/2 stream (listener/unary.ts leanGrpcStream). */
export function grpcStreamOk(stream: http2.ServerHttp2Stream, output: DescMessage, message: Message): void {
  stream.respond(GRPC_HEADERS, { waitForTrailers: true });
  stream.once("wantTrailers", () => stream.sendTrailers(GRPC_OK_TRAILERS));
  stream.end(grpcFrame(binaryOf(output, message)));
}

/** Trailers-only: the status in the one HEADERS frame, with END_STREAM. */
export function grpcStreamError(stream: http2.ServerHttp2Stream, err: ConnectError, extra: http2.OutgoingHttpHeaders = {}): void {
  stream.respond({
    ...GRPC_HEADERS,
    ...extra,
    "grpc-status": String(err.code),
    "grpc-message": encodeURIComponent(err.rawMessage),
  }, { endStream: true });
}

const GRPC_WEB_TYPE = "application/grpc-web+proto";
const GRPC_WEB_OK_TRAILER = webTrailer(undefined);

const GRPC_WEB: UnaryWire = {
  protocol: "grpc-web",
  framing: 5,
  timeoutMs: (headers) => grpcTimeout(headers["grpc-timeout"]),
  parse: (input, body) => parseBinary(input, unwrap(body)),
  ok(res, output, message) {
    const frame = grpcFrame(binaryOf(output, message));
    res.writeHead(200, { "content-type": GRPC_WEB_TYPE, "content-length": frame.length + GRPC_WEB_OK_TRAILER.length });
    res.end(Buffer.concat([frame, GRPC_WEB_OK_TRAILER], frame.length + GRPC_WEB_OK_TRAILER.length));
  },
  error(res, err) {
    // The status in a trailer frame in the body (the trailers-only form in headers is allowed too, but
    // browsers' fetch exposes the body more reliably than headers through CORS).
    const trailer = webTrailer(err);
    res.writeHead(200, { "content-type": GRPC_WEB_TYPE, "content-length": trailer.length });
    res.end(trailer);
  },
};

function webTrailer(err: ConnectError | undefined): Buffer {
  const trailer = new Headers({ "grpc-status": "0" });
  if (err) setTrailerStatus(trailer, err);
  return grpcFrame(trailerSerialize(trailer), trailerFlag);
}

/** The Connect handlers' JSON options (proxy.ts): unknown fields are ignored, as etcd's gateway does. */
const JSON_READ = { ignoreUnknownFields: true };

function connectWire(binary: boolean): UnaryWire {
  const contentType = binary ? "application/proto" : "application/json";
  return {
    protocol: "connect",
    framing: 0,
    timeoutMs(headers) {
      const t = parseConnectTimeout(headerValue(headers, "connect-timeout-ms"), Number.MAX_SAFE_INTEGER);
      return t.error ?? t.timeoutMs;
    },
    parse(input, body) {
      if (binary) return parseBinary(input, body);
      try {
        return fromJsonString(input, body.toString("utf8"), JSON_READ);
      } catch (err) {
        throw ConnectError.from(err, Code.InvalidArgument);
      }
    },
    ok(res, output, message) {
      const body = binary ? asBuffer(binaryOf(output, message)) : Buffer.from(toJsonString(output, message));
      res.writeHead(200, { "content-type": contentType, "content-length": body.length });
      res.end(body);
    },
    error(res, err) {
      const body = errorToJsonBytes(err, {});
      res.writeHead(codeToHttpStatus(err.code), { "content-type": "application/json", "content-length": body.byteLength });
      res.end(body);
    },
  };
}

const CONNECT_PROTO = connectWire(true);
const CONNECT_JSON = connectWire(false);

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The one message of a unary gRPC or gRPC-Web request body (uncompressed: compressed ones never come here). */
function unwrap(body: Buffer): Uint8Array {
  if (body.length < 5) throw new ConnectError(`parse binary: premature EOF (${body.length} bytes, no message)`, Code.InvalidArgument);
  assertUncompressed(body[0]);
  const length = body.readUInt32BE(1);
  if (body.length !== 5 + length) throw new ConnectError(`parse binary: expected one message of ${length} bytes, got ${body.length - 5}`, Code.InvalidArgument);
  return body.subarray(5);
}

/** grpc-timeout: up to 8 digits and a unit (wire.md §3), in milliseconds; undefined when absent or bad. */
function grpcTimeout(value: string | string[] | undefined): number | undefined {
  if (typeof value !== "string") return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (!m) return undefined;
  const n = Number(m[1]);
  const ms = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 }[m[2] as "H"];
  return Math.max(1, Math.ceil(n * ms));
}

function headerValue(headers: http.IncomingHttpHeaders, name: string): string | null {
  const v = headers[name];
  return typeof v === "string" ? v : null;
}
