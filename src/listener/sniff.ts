/**
 * One cleartext port for HTTP/2 (h2c prior knowledge: gRPC, and curl --http2-prior-knowledge) and
 * HTTP/1.1 (gRPC-Web, Connect, curl). node:http2 ignores allowHTTP1 without TLS (it relies on ALPN), so
 * the first bytes decide: the 24-byte HTTP/2 client preface goes to the h2 server, anything else to the
 * HTTP/1.1 server. Bytes are put back with unshift() before the socket is handed over.
 */
import type { Socket } from "node:net";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/**
 * A connection that sends fewer bytes than the preface and then nothing is closed after this long, so a
 * silent client cannot hold a socket forever.
 */
const SNIFF_TIMEOUT_MS = 10_000;

export function sniffProtocol(socket: Socket, toH2: (s: Socket) => void, toH1: (s: Socket) => void): void {
  let seen: Buffer = Buffer.alloc(0);
  const timer = setTimeout(() => socket.destroy(), SNIFF_TIMEOUT_MS);
  const onError = () => {
    clearTimeout(timer);
    socket.destroy();
  };
  socket.on("error", onError);
  socket.on("close", () => clearTimeout(timer));
  const onData = (chunk: Buffer) => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    const n = Math.min(seen.length, PREFACE.length);
    const isPrefix = seen.subarray(0, n).equals(PREFACE.subarray(0, n));
    // A short first chunk that still matches the preface: wait for more before deciding.
    if (isPrefix && seen.length < PREFACE.length) return;
    clearTimeout(timer);
    socket.off("data", onData);
    socket.off("error", onError);
    socket.pause();
    socket.unshift(seen);
    (isPrefix ? toH2 : toH1)(socket);
    // The new owner has attached its listeners now; resuming on the next tick lets it read the bytes
    // we put back (without it HTTP/1.1 hangs and Bun's HTTP/2 reports a bad client magic).
    process.nextTick(() => socket.resume());
  };
  socket.on("data", onData);
}
