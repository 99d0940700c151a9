/**
 * The first bytes of each connection, read before node:http2 or node:http gets the socket.
 *
 * One cleartext port for HTTP/2 (h2c prior knowledge: gRPC, and curl --http2-prior-knowledge) and
 * HTTP/1.1 (gRPC-Web, Connect, curl). node:http2 ignores allowHTTP1 without TLS (it relies on ALPN), so
 * the first bytes decide: the 24-byte HTTP/2 client preface goes to the h2 server, anything else to the
 * HTTP/1.1 server.
 *
 * HTTP/2 connections, cleartext and TLS, are then held until their first header block so that its
 * `:authority` can be patched (h2-authority.ts says why). grpc-go sends its preface and SETTINGS and waits
 * for the server's SETTINGS before its first HEADERS, so when the client's first bytes hold no HEADERS we
 * send an empty SETTINGS (the server preface: all defaults) ourselves, and drop the client's ACK of it
 * before nghttp2 sees it (nghttp2 ends a connection on an ACK it never asked for). nghttp2's own SETTINGS
 * follow when it takes over. Bytes are put back with unshift() and the native socket is handed over, so
 * node:http2 reads it directly as before (a JS stream in between would put every connection on its slow
 * JSStreamSocket path).
 *
 * Only the first header block is patched: after it nghttp2 owns the socket. That covers etcdctl, whose
 * per-endpoint connections carry one call; later requests that send the authority by index get the
 * patched value from the dynamic table. A URL authority is still refused when it comes as a literal
 * later: after the client's table has evicted the first, or first on a connection that sent a PING
 * first or idled past SNIFF_TIMEOUT_MS.
 */
import type { Socket } from "node:net";
import type * as tls from "node:tls";
import { CLIENT_PREFACE, ClientStart } from "./h2-authority.js";

/**
 * A connection that sends fewer bytes than the preface and then nothing is closed after this long, so a
 * silent client cannot hold a socket forever. An HTTP/2 connection still without a header block then
 * (an idle gRPC channel) is handed over as it is.
 */
export const SNIFF_TIMEOUT_MS = 10_000;

/**
 * Bytes held while waiting for the first header block. A client that sends more first (a header block
 * over 64 KiB, or many SETTINGS) is handed over as it is once the held bytes reach this, plus at most the
 * chunk that crossed it; its `:authority` is then not patched. A client that has not acknowledged our
 * SETTINGS by then (or by SNIFF_TIMEOUT_MS) is closed: HTTP/2 requires the ACK.
 */
const MAX_HELD_BYTES = 64 * 1024;

/** An empty SETTINGS frame: the server preface, with every setting at its default. */
const SERVER_SETTINGS = Buffer.from([0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
const SETTINGS_ACK_LENGTH = 9;

export function sniffProtocol(socket: Socket, toH2: (s: Socket) => void, toH1: (s: Socket) => void): void {
  readFirstBytes(socket, true, toH2, toH1);
}

/**
 * Holds each decrypted h2 connection of `server` until its first header block, as for cleartext. The
 * secure server sets its sessions up in its one 'secureConnection' listener (Node's
 * lib/internal/http2/core.js, connectionListener; Deno and Bun carry the same code); that listener is
 * wrapped so it gets h2 sockets after the read. False, and nothing changed, if the shape differs.
 */
export function readFirstFramesOfH2(server: tls.Server): boolean {
  const listeners = server.listeners("secureConnection") as ((s: tls.TLSSocket) => void)[];
  if (listeners.length !== 1) return false;
  const sessionSetup = listeners[0]!;
  server.removeListener("secureConnection", sessionSetup);
  server.on("secureConnection", (socket: tls.TLSSocket) => {
    const setup = (s: Socket) => sessionSetup.call(server, s as tls.TLSSocket);
    if (socket.alpnProtocol === "h2") readFirstBytes(socket, false, setup, setup);
    else setup(socket);
  });
  return true;
}

/**
 * Reads until the destination is known and, for HTTP/2, until the first header block (or another deciding
 * frame) and the ACK of our SETTINGS if we sent one; then hands the socket over exactly once, or
 * destroys it. `sniff`: cleartext, where the preface decides between HTTP/2 and HTTP/1.1.
 */
function readFirstBytes(socket: Socket, sniff: boolean, toH2: (s: Socket) => void, toH1: (s: Socket) => void): void {
  // Grown by doubling; the first chunk is used as it is, so the usual connection copies nothing.
  let held: Buffer = Buffer.alloc(0);
  let used = 0;
  const start = new ClientStart();
  let sentSettings = false;
  let done = false;

  const finish = (to: ((s: Socket) => void) | undefined) => {
    done = true;
    clearTimeout(timer);
    socket.off("data", onData);
    socket.off("error", onError);
    socket.off("end", onEnd);
    socket.off("close", onClose);
    if (!to) {
      socket.destroy();
      return;
    }
    socket.pause();
    let bytes = held.subarray(0, used);
    if (sentSettings && start.settingsAck !== undefined) {
      const at = start.settingsAck;
      bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + SETTINGS_ACK_LENGTH)]);
    }
    if (bytes.length > 0) socket.unshift(bytes);
    to(socket);
    // The new owner has attached its listeners now; resuming on the next tick lets it read the bytes
    // we put back (without it HTTP/1.1 hangs and Bun's HTTP/2 reports a bad client magic).
    process.nextTick(() => socket.resume());
  };
  // Any throw in a callback (ours or the new owner's) ends this connection only.
  const guard = <A extends unknown[]>(fn: (...args: A) => void) => (...args: A) => {
    try {
      fn(...args);
    } catch {
      done = true;
      clearTimeout(timer);
      socket.destroy();
    }
  };
  const isPreface = () => {
    const n = Math.min(used, CLIENT_PREFACE.length);
    return held.subarray(0, n).equals(CLIENT_PREFACE.subarray(0, n));
  };
  const decide = () => {
    if (sniff) {
      if (!isPreface()) return finish(toH1);
      if (used < CLIENT_PREFACE.length) return;
    }
    start.scan(held.subarray(0, used));
    const waitingForAck = sentSettings && start.settingsAck === undefined;
    if (start.state !== "more" && !waitingForAck) return finish(toH2);
    // At the bound: handed over as it is, unless our SETTINGS is still unacknowledged (its ACK would then
    // reach nghttp2, which never sent it, and end the connection anyway): closed.
    if (used >= MAX_HELD_BYTES) return finish(waitingForAck ? undefined : toH2);
    if (start.state === "more" && !start.headersBegun && !sentSettings && used >= CLIENT_PREFACE.length) {
      sentSettings = true;
      socket.write(SERVER_SETTINGS);
    }
  };
  const onData = guard((chunk: Buffer) => {
    if (done) return;
    if (used === 0) {
      held = chunk;
    } else {
      if (used + chunk.length > held.length) {
        const grown = Buffer.allocUnsafe(Math.max(used + chunk.length, 2 * held.length));
        held.copy(grown, 0, 0, used);
        held = grown;
      }
      chunk.copy(held, used);
    }
    used += chunk.length;
    decide();
  });
  // Cleartext before the preface has decided: destroy, as a silent client gets nothing. A first header
  // block begun and not finished within the timeout: destroy too (nghttp2 would wait for the rest forever).
  // Otherwise the connection is valid HTTP/2 so far (an idle gRPC channel): hand it over as it is.
  const onTimeout = guard(() => {
    if (done) return;
    const waitingForAck = sentSettings && start.settingsAck === undefined;
    const headersUnfinished = start.headersBegun && start.state === "more";
    finish((sniff && used < CLIENT_PREFACE.length) || waitingForAck || headersUnfinished ? undefined : toH2);
  });
  const onError = guard(() => finish(undefined));
  // A client that half-closes before its first request gets nothing (and unshift() after 'end' fails).
  const onEnd = onError;
  const onClose = () => {
    done = true;
    clearTimeout(timer);
  };
  const timer = setTimeout(onTimeout, SNIFF_TIMEOUT_MS);
  socket.on("error", onError);
  socket.on("end", onEnd);
  socket.on("close", onClose);
  socket.on("data", onData);
}
