/**
 * gRPC's length-prefixed message framing (1 flag byte, 4 bytes big-endian length, the message), done by
 * hand so the load generator can send requests encoded once up front and read replies without a library
 * between it and the socket. Framing a message is the proxy's own grpcFrame; reading is done here.
 */

/** Frames one encoded protobuf message (uncompressed): the proxy's own encoder. */
export { grpcFrame as frame } from "../../src/upstream/grpc-frame.js";

/**
 * Splits a stream of DATA chunks into messages. Holds at most one partial message: a message larger than
 * `maxBytes` is a protocol error here (the benchmark's replies are small), reported instead of buffered.
 */
export class FrameReader {
  private pending: Buffer | undefined;

  constructor(private readonly onMessage: (message: Buffer) => void, private readonly maxBytes = 16 * 1024 * 1024) {}

  push(chunk: Buffer): void {
    let buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = undefined;
    while (buf.length >= 5) {
      const len = buf.readUInt32BE(1);
      if (len > this.maxBytes) throw new Error(`gRPC message of ${len} bytes exceeds the reader's ${this.maxBytes}`);
      if (buf.length < 5 + len) break;
      this.onMessage(buf.subarray(5, 5 + len));
      buf = buf.subarray(5 + len);
    }
    if (buf.length > 0) this.pending = Buffer.from(buf);
  }
}
