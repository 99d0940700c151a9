/**
 * wire/: what the server side and the etcd client both speak. Imports: no other src/ folder (a leaf).
 *
 * gRPC's length-prefixed messages (wire.md §3): a flag byte, a 4-byte big-endian length, the bytes. The
 * one encoder and the one decoder of them, for both sides: the fast paths (client requests), the unary
 * caller (etcd's answers), the watch encoder, and the benchmark's load generator.
 */
import { fromBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { messageTooLarge } from "./errors.js";

/** Flag of an uncompressed message; gRPC-Web's trailer frame has 0x80. */
export const MESSAGE_FLAG = 0;
export const TRAILER_FLAG = 0x80;

/** One frame around `bytes`. */
export function grpcFrame(bytes: Uint8Array, flag = MESSAGE_FLAG): Buffer {
  const out = Buffer.allocUnsafe(5 + bytes.length);
  out[0] = flag;
  out.writeUInt32BE(bytes.length, 1);
  out.set(bytes, 5);
  return out;
}

export interface Frame {
  flag: number;
  bytes: Buffer;
}

/**
 * Splits a byte stream into frames as chunks arrive. Holds at most one partial frame: a frame that
 * announces more than `maxBytes` is refused (ResourceExhausted, connect-es's wording) before any of it is
 * buffered, so a client cannot make it hold more than one message's worth.
 */
export class FrameDecoder {
  private pending: Buffer | undefined;

  constructor(private readonly maxBytes: number) {}

  /** The frames `chunk` completes; throws messageTooLarge for an oversized one. */
  push(chunk: Buffer): Frame[] {
    let buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = undefined;
    const frames: Frame[] = [];
    while (buf.length >= 5) {
      const length = buf.readUInt32BE(1);
      if (length > this.maxBytes) throw messageTooLarge(length, this.maxBytes);
      if (buf.length < 5 + length) break;
      frames.push({ flag: buf[0]!, bytes: buf.subarray(5, 5 + length) });
      buf = buf.subarray(5 + length);
    }
    if (buf.length > 0) this.pending = buf;
    return frames;
  }

  /** Bytes of an incomplete frame still held. */
  get buffered(): number {
    return this.pending?.length ?? 0;
  }
}

/**
 * The one message of a whole unary body, or why it is not one (a ConnectError with `code`: the client's
 * bad request is InvalidArgument, etcd's bad answer Internal).
 */
export function singleMessage(body: Buffer, code: Code): Uint8Array {
  if (body.length < 5) throw new ConnectError(`parse binary: premature EOF (${body.length} bytes, no message)`, code);
  const length = body.readUInt32BE(1);
  if (body.length !== 5 + length) throw new ConnectError(`parse binary: expected one message of ${length} bytes, got ${body.length - 5}`, code);
  if (body[0] !== MESSAGE_FLAG) throw compressedWithoutEncoding(code);
  return body.subarray(5);
}

/** A frame's flag byte: only uncompressed messages come here (no grpc-encoding was negotiated). */
export function assertUncompressed(flag: number | undefined, code: Code = Code.InvalidArgument): void {
  if (flag !== MESSAGE_FLAG) throw compressedWithoutEncoding(code);
}

function compressedWithoutEncoding(code: Code): ConnectError {
  return new ConnectError("parse binary: compressed message without grpc-encoding", code);
}

/** A message from bytes: a ConnectError (InvalidArgument unless told) with protobuf-es's reason when it is not one. */
export function parseBinary<Desc extends DescMessage>(schema: Desc, bytes: Uint8Array, code: Code = Code.InvalidArgument): MessageShape<Desc> {
  try {
    return fromBinary(schema, bytes, { readUnknownFields: true });
  } catch (err) {
    throw new ConnectError(`parse binary: ${(err as Error).message}`, code);
  }
}
