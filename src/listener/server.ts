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
 * The listener's bounds and timeouts against abusive clients, each with its value and what happens when
 * it is reached. test/integration/transport-abuse.test.ts reaches each one.
 *
 * Not set here, stated for completeness: no limit on connections (etcd has none; the process's open file
 * limit bounds them) and no idle timeout on HTTP/2 sessions or streams (a watch may be silent for hours;
 * --grpc-keepalive-* pings, keepalive.ts, and TCP keepalive after 30 s find dead peers). A connection
 * that sends less than the HTTP/2 preface is closed after 10 s, and an HTTP/2 connection is held for at
 * most 10 s before its first header block (sniff.ts, SNIFF_TIMEOUT_MS). Node's nghttp2 ends a connection
 * whose header block spans more than 8 CONTINUATION frames (GOAWAY, not configurable), so a CONTINUATION
 * flood costs at most one header block (64 KiB below) per connection.
 */
export const TRANSPORT_BOUNDS = {
  /**
   * Memory an HTTP/2 session may buffer before Node refuses new streams (RST_STREAM ENHANCE_YOUR_CALM).
   * Node's default of 10 MB is reached by a client with a few thousand watch streams on one connection;
   * 256 MB is still a bound against a client that never reads.
   */
  maxSessionMemoryMb: 256,
  /**
   * Bytes of one HTTP/2 header block (SETTINGS_MAX_HEADER_LIST_SIZE, names + values + 32 per field, as
   * Node's default 65,535): a request over it is reset (RST_STREAM ENHANCE_YOUR_CALM), the connection goes
   * on. gRPC metadata is a few hundred bytes; etcd's auth token under 1 KiB.
   */
  maxHeaderListBytes: 64 * 1024,
  /** Header fields of one HTTP/2 request (Node's default): over it the stream is reset as above. */
  maxHeaderListPairs: 128,
  /**
   * Frames nghttp2 finds invalid on one HTTP/2 connection (Node's default): the next one ends the
   * connection. A well-behaved client sends none.
   */
  maxSessionInvalidFrames: 1_000,
  /**
   * HTTP/2 streams refused at creation on one connection (over the concurrent-stream limit or the session
   * memory above; each is answered RST_STREAM REFUSED_STREAM): past 100 (Node's default) the connection is
   * ended (GOAWAY ENHANCE_YOUR_CALM). A client that honours SETTINGS_MAX_CONCURRENT_STREAMS queues instead.
   */
  maxSessionRejectedStreams: 100,
  /**
   * HTTP/1.1 request headers must be complete within 10 s of the request's first byte (Node's default is
   * 60 s): a slow-headers client's connection is closed (over TLS after a 408). Node checks every
   * `connectionsCheckingIntervalMs`, so the cut comes within 10-11 s.
   */
  headersTimeoutMs: 10_000,
  connectionsCheckingIntervalMs: 1_000,
  /**
   * HTTP/1.1 request bodies have no deadline (Node's default 300 s is turned off): the JSON gateway's watch
   * and keep-alive read requests from a body the client keeps open for as long as it likes. A gRPC,
   * gRPC-Web or Connect deadline (grpc-timeout, connect-timeout-ms) ends a call whose body is incomplete
   * with DeadlineExceeded; without a deadline an incomplete unary body waits, as on etcd.
   */
  requestTimeoutMs: 0,
  /** Idle HTTP/1.1 keep-alive connections are closed after 65 s without a request (longer than common LB idle timeouts of 60 s). */
  keepAliveTimeoutMs: 65_000,
  /** Bytes of HTTP/1.1 request headers (Node's default): over it the connection is closed (over TLS after a 431). */
  maxHttp1HeaderBytes: 16 * 1024,
  /** A TLS handshake not finished within 10 s is dropped (Node's default is 120 s). */
  tlsHandshakeTimeoutMs: 10_000,
} as const;

/**
 * Client stream resets (RST_STREAM) a connection may send: a burst of 10,000, then 1,000 a second. Node's
 * default since the rapid-reset fix (1,000, then 33 a second) ends the whole connection (GOAWAY, every
 * call on it failing with INTERNAL_ERROR) for ordinary clients that cancel streams often: one-shot
 * keep-alives (`etcdctl lease keep-alive --once`) and short watches from one process. etcd does not limit
 * resets so; this stays a bound against the attack (past it: GOAWAY, the connection ends). Measured with
 * the one-shot keep-alive benchmark: Bun 1.4 honours the options; Node 20.20 and Deno 2.9 ignore them and
 * keep their defaults (README, known limitations), newer Node versions take them.
 */
export const STREAM_RESET_LIMIT = { streamResetBurst: 10_000, streamResetRate: 1_000 } as const;

export async function listen(o: ListenerOptions): Promise<Listener> {
  const b = TRANSPORT_BOUNDS;
  const h2Options: http2.ServerOptions = {
    settings: { maxConcurrentStreams: o.maxConcurrentStreams, maxHeaderListSize: b.maxHeaderListBytes },
    maxSessionMemory: b.maxSessionMemoryMb,
    maxHeaderListPairs: b.maxHeaderListPairs,
    maxSessionInvalidFrames: b.maxSessionInvalidFrames,
    maxSessionRejectedStreams: b.maxSessionRejectedStreams,
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
  let stopH1Checks: (() => void) | undefined;
  const sockets = new Set<net.Socket>();
  if (o.tls) {
    const secure = http2.createSecureServer({
      ...h2Options,
      allowHTTP1: true,
      ...secureContextOptions(o.tls),
      requestCert: o.tls.requireClientCert,
      rejectUnauthorized: o.tls.requireClientCert,
      handshakeTimeout: b.tlsHandshakeTimeoutMs,
    });
    // HTTP/1.1 over TLS is served by the secure server itself, which takes these as properties.
    Object.assign(secure, { headersTimeout: b.headersTimeoutMs, requestTimeout: b.requestTimeoutMs, connectionsCheckingInterval: b.connectionsCheckingIntervalMs, keepAliveTimeout: b.keepAliveTimeoutMs });
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
    const h1 = http.createServer({
      headersTimeout: b.headersTimeoutMs,
      requestTimeout: b.requestTimeoutMs,
      connectionsCheckingInterval: b.connectionsCheckingIntervalMs,
      keepAliveTimeout: b.keepAliveTimeoutMs,
      maxHeaderSize: b.maxHttp1HeaderBytes,
    });
    h1.on("request", handler);
    h1.on("clientError", (_err, socket) => socket.destroy());
    // runtime/ decides how HTTP/1.1 reaches h1 (Deno needs a splice to keep connections alive).
    const handoff = await runtime.http1Handoff(h1);
    h1Handoff = handoff;
    // Node checks headersTimeout from a timer it starts on 'listening'; handed sockets directly, h1 never
    // listens, so without this a slow-headers client would never be cut. close() stops the timer.
    if (!h1.listening) {
      h1.emit("listening");
      stopH1Checks = () => h1.close();
    }
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
      stopH1Checks?.();
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
