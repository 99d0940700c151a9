/**
 * The one listener. With TLS: node:http2's secure server with ALPN h2 and http/1.1. Without: a TCP server
 * that sniffs each connection (sniff.ts) and hands it to an h2c or an HTTP/1.1 server. Both servers call
 * the same request handler, so every route works over every HTTP version.
 */
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import type { SecureContextOptions } from "node:tls";
import { runtime, type Http1Handoff, type StreamTaker } from "../runtime/runtime.js";
import { Drain } from "./drain.js";
import { pingClients, type KeepAlive } from "./keepalive.js";
import { refuseRevoked, type RevocationList } from "./revocation.js";
import { readFirstFramesOfH2, sniffProtocol } from "./sniff.js";

/** The listener's TLS, as config/tls-files.ts reads it from the flags. */
export interface ListenerTls {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
  crl?: RevocationList;
  /** Set with --trusted-ca-file: a client without a certificate signed by `ca` is refused. */
  requireClientCert: boolean;
  ciphers?: string;
  minVersion: "TLSv1.2" | "TLSv1.3";
  maxVersion?: "TLSv1.2" | "TLSv1.3";
}

export type RequestHandler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void;

export interface ListenerOptions {
  host: string;
  port: number;
  tls: ListenerTls | undefined;
  maxConcurrentStreams: number;
  handler: RequestHandler;
  /**
   * Sees each HTTP/2 stream first, on runtimes where that is possible (runtime.ts streamsFirst), and says
   * whether it took it; streams it leaves go to `handler` as requests.
   */
  streams?: StreamTaker | undefined;
  /** --grpc-keepalive-interval/-timeout: ping HTTP/2 clients (keepalive.ts); undefined: no pings. */
  keepAlive?: KeepAlive | undefined;
  log: (msg: string) => void;
}

export interface Listener {
  host: string;
  port: number;
  /**
   * Stop accepting connections; HTTP/2 clients get GOAWAY and HTTP/1.1 answers `Connection: close`, while
   * what is in flight goes on (drain.ts).
   */
  stopAccepting(): void;
  /** Resolves once no request or stream is in flight. */
  idle(): Promise<void>;
  /** Stop accepting, then close open connections now. */
  close(): Promise<void>;
  /** New certificate, key or CA for connections from now on (a TLS listener; certificate reload). */
  setTls(tls: ListenerTls): void;
}

/**
 * Memory an HTTP/2 session may buffer before Node refuses new streams (ENHANCE_YOUR_CALM). Node's default
 * of 10 MB is reached by a client with a few thousand watch streams on one connection; 256 MB is still a
 * bound against a client that never reads.
 */
const MAX_SESSION_MEMORY_MB = 256;

/**
 * Client stream resets (RST_STREAM) a connection may send: a burst of 10,000, then 1,000 a second. Node's
 * default since the rapid-reset fix (1,000, then 33 a second) ends the whole connection (GOAWAY, every
 * call on it failing with INTERNAL_ERROR) for ordinary clients that cancel streams often: one-shot
 * keep-alives (`etcdctl lease keep-alive --once`) and short watches from one process. etcd does not limit
 * resets so; this stays a bound against the attack. Measured with the one-shot keep-alive benchmark: Bun
 * 1.4 honours the options; Node 20.20 and Deno 2.9 ignore them and keep their defaults (README, known
 * limitations), newer Node versions take them.
 */
const STREAM_RESET_LIMIT = { streamResetBurst: 10_000, streamResetRate: 1_000 } as const;

export async function listen(o: ListenerOptions): Promise<Listener> {
  const h2Options: http2.ServerOptions = {
    settings: { maxConcurrentStreams: o.maxConcurrentStreams },
    maxSessionMemory: MAX_SESSION_MEMORY_MB,
    ...STREAM_RESET_LIMIT,
  };
  runtime.assertSupported();
  const drain = new Drain();
  const handler = drain.handler(o.handler);
  const streams = o.streams ? drain.streams(o.streams) : undefined;
  const h2Setup = (h2: http2.Http2Server | http2.Http2SecureServer) => {
    drain.track(h2);
    if (o.keepAlive) pingClients(h2, o.keepAlive, o.log);
  };
  let server: net.Server;
  let secureServer: http2.Http2SecureServer | undefined;
  let h1Handoff: Http1Handoff | undefined;
  const sockets = new Set<net.Socket>();
  if (o.tls) {
    const secure = http2.createSecureServer({
      ...h2Options,
      allowHTTP1: true,
      ...secureContextOptions(o.tls),
      requestCert: o.tls.requireClientCert,
      rejectUnauthorized: o.tls.requireClientCert,
    });
    // Wraps the session setup before anything else does, so later wrappers (the CRL check) run first.
    readFirstFramesOfH2(secure);
    // Not node:tls's `crl`: etcd reads DER too and ignores nextUpdate (revocation.ts).
    if (o.tls.crl) refuseRevoked(secure, o.tls.crl, o.log);
    secure.on("request", handler);
    if (streams) runtime.streamsFirst(secure, streams);
    h2Setup(secure);
    secure.on("sessionError", () => {});
    secure.on("tlsClientError", (err) => { if (o.tls?.requireClientCert) o.log(`etcd-edge: TLS handshake refused: ${err.message}`); });
    secure.setTimeout(0);
    server = secure;
    secureServer = secure;
  } else {
    const h2 = http2.createServer(h2Options);
    h2.on("request", handler);
    if (streams) runtime.streamsFirst(h2, streams);
    h2Setup(h2);
    h2.on("sessionError", () => {});
    h2.setTimeout(0);
    // Long-lived responses (server streams over HTTP/1.1, JSON gateway watches) must not be cut by Node's
    // default 5 minute request timeout.
    const h1 = http.createServer({ requestTimeout: 0, keepAliveTimeout: 65_000 });
    h1.on("request", handler);
    h1.on("clientError", (_err, socket) => socket.destroy());
    // runtime/ decides how HTTP/1.1 reaches h1 (Deno needs a splice to keep connections alive).
    const handoff = await runtime.http1Handoff(h1);
    h1Handoff = handoff;
    server = net.createServer((socket) => sniffProtocol(socket, (s) => h2.emit("connection", s), (s) => handoff.accept(s)));
  }
  server.on("connection", (s: net.Socket) => {
    sockets.add(s);
    s.setKeepAlive(true, 30_000);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port, o.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (err) => o.log(`etcd-edge: listener error: ${err.message}`));
  const addr = server.address() as net.AddressInfo;
  // Resolves when every connection has closed, once server.close has been called (only once).
  let closed: Promise<void> | undefined;
  const stopAccepting = () => {
    closed ??= new Promise<void>((resolve) => server.close(() => resolve()));
    drain.stop();
  };
  return {
    host: addr.address,
    port: addr.port,
    stopAccepting,
    idle: () => drain.idle(),
    close: async () => {
      stopAccepting();
      for (const s of sockets) s.destroy();
      await closed;
      await h1Handoff?.close();
    },
    setTls: (tls) => secureServer?.setSecureContext(secureContextOptions(tls)),
  };
}

/** What node:tls builds a secure context from: at start, and again when the files change. */
function secureContextOptions(tls: ListenerTls): SecureContextOptions {
  return {
    cert: tls.cert,
    key: tls.key,
    ...(tls.ca ? { ca: tls.ca } : {}),
    ...(tls.ciphers ? { ciphers: tls.ciphers } : {}),
    minVersion: tls.minVersion,
    ...(tls.maxVersion ? { maxVersion: tls.maxVersion } : {}),
  };
}
