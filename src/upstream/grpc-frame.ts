/** gRPC's length-prefixed message (wire.md §3): flag 0 (uncompressed), 4-byte big-endian length, bytes. */
export function grpcFrame(bytes: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + bytes.length);
  out[0] = 0;
  out.writeUInt32BE(bytes.length, 1);
  out.set(bytes, 5);
  return out;
}
