/**
 * gRPC's length-prefixed message framing for the load generator: the proxy's own encoder and decoder
 * (src/wire/frame.ts), so requests are encoded once up front and replies read without a library between
 * the generator and the socket.
 */
import { FrameDecoder } from "../../src/wire/frame.js";

/** Frames one encoded protobuf message (uncompressed). */
export { grpcFrame as frame } from "../../src/wire/frame.js";

/** Calls `onMessage` for each message of a stream of DATA chunks (16 MiB at most each: replies are small). */
export class FrameReader {
  private readonly decoder: FrameDecoder;

  constructor(private readonly onMessage: (message: Buffer) => void, maxBytes = 16 * 1024 * 1024) {
    this.decoder = new FrameDecoder(maxBytes);
  }

  push(chunk: Buffer): void {
    for (const f of this.decoder.push(chunk)) this.onMessage(f.bytes);
  }
}
