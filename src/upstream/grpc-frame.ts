/**
 * gRPC's length-prefixed messages (wire.md §3): a flag byte, a 4-byte big-endian length, the bytes. The
 * one encoder and decoder of them for the proxy's own gRPC paths (lean listener paths, unary caller, watch
 * hub) and the benchmark's load generator.
 */
import { fromBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";

/** One frame around `bytes`; flag 0 is an uncompressed message, 0x80 a gRPC-Web trailer. */
export function grpcFrame(bytes: Uint8Array, flag = 0): Buffer {
  const out = Buffer.allocUnsafe(5 + bytes.length);
  out[0] = flag;
  out.writeUInt32BE(bytes.length, 1);
  out.set(bytes, 5);
  return out;
}

/** A frame's flag byte: only uncompressed messages come to the lean paths (no grpc-encoding). */
export function assertUncompressed(flag: number | undefined): void {
  if (flag !== 0) throw new ConnectError("parse binary: compressed message without grpc-encoding", Code.InvalidArgument);
}

/** A client's message: InvalidArgument with protobuf-es's reason when it is not one. */
export function parseBinary<Desc extends DescMessage>(schema: Desc, bytes: Uint8Array): MessageShape<Desc> {
  try {
    return fromBinary(schema, bytes, { readUnknownFields: true });
  } catch (err) {
    throw new ConnectError(`parse binary: ${(err as Error).message}`, Code.InvalidArgument);
  }
}

/**
 * ResourceExhausted for a message over a configured limit, in connect-es's words (the same text whichever
 * path refuses it). `limit` names the side: readMaxBytes for what is received, writeMaxBytes for sent.
 */
export function messageTooLarge(size: number, max: number, limit: "readMaxBytes" | "writeMaxBytes" = "readMaxBytes"): ConnectError {
  return new ConnectError(`message size ${size} is larger than configured ${limit} ${max}`, Code.ResourceExhausted);
}
