/**
 * A gRPC call's status as it goes on the wire (wire.md §3): grpc-status and grpc-message, in trailers or
 * alone in the one HEADERS frame (trailers-only). grpc-message is written as etcd (grpc-go) writes it:
 * the gRPC spec percent-encodes only bytes outside 0x20-0x7E and `%` itself, so
 * "etcdserver: requested lease not found" goes out as it is. grpc-js reads it with decodeURI, which
 * leaves `%3A` alone: connect-es's encodeURIComponent made its clients miss etcd's errors.
 */
import type { ConnectError } from "@connectrpc/connect";
import type * as http2 from "node:http2";

const PLAIN = /^[\x20-\x24\x26-\x7e]*$/;

/** The gRPC spec's percent-encoding of a status message (over its UTF-8 bytes). */
export function encodeGrpcMessage(message: string): string {
  if (PLAIN.test(message)) return message;
  let out = "";
  for (const b of Buffer.from(message, "utf8")) {
    out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** The message of a received grpc-message; a malformed encoding is kept as it came (the spec says so). */
export function decodeGrpcMessage(raw: string): string {
  if (!raw.includes("%")) return raw;
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/**
 * A status message someone else encoded with encodeURIComponent (connect-es does), re-encoded as the
 * spec and etcd do: what a client decodes is the same text either way.
 */
export function reencodeGrpcMessage(raw: string): string {
  return encodeGrpcMessage(decodeGrpcMessage(raw));
}

export const GRPC_OK = { "grpc-status": "0" } as const;

/** The status fields of a call that ended with `err` (or OK). */
export function grpcStatus(err: ConnectError | undefined): Record<string, string> {
  if (!err) return GRPC_OK;
  return { "grpc-status": String(err.code), "grpc-message": encodeGrpcMessage(err.rawMessage) };
}

/**
 * Trailers-only on a bare HTTP/2 stream: the status in the one HEADERS frame, with END_STREAM (on a
 * separate frame gRPC clients wait for trailers that never come). `extra`: headers the compat layer had
 * (CORS, cors.ts), which stream.respond does not carry over by itself.
 */
export function respondTrailersOnly(stream: http2.ServerHttp2Stream, contentType: string, err: ConnectError | undefined, extra: http2.OutgoingHttpHeaders = {}): void {
  if (stream.destroyed || stream.headersSent) return;
  stream.respond({ ":status": 200, "content-type": contentType, ...extra, ...grpcStatus(err) }, { endStream: true });
}
