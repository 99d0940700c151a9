/**
 * A bare gRPC client on node:http2: requests are frames encoded once, replies are checked by grpc-status
 * and decoded only where a workload needs their content. It is the cheapest client Node can be, so the
 * generator is not what limits the figures (the static ceiling shows how far it goes).
 */
import * as http2 from "node:http2";
import { FrameReader } from "./grpc-frame.js";

/**
 * Memory one client session may buffer. Node's 10 MB default refuses new streams (ENHANCE_YOUR_CALM) when
 * a few thousand watch streams share a connection; the generator's sessions are ours, 256 MB is a bound.
 */
const MAX_SESSION_MEMORY_MB = 256;

export function openSession(url: string, timeoutMs = 10_000): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url, { maxSessionMemory: MAX_SESSION_MEMORY_MB, settings: { enablePush: false } });
    const timer = setTimeout(() => { session.destroy(); reject(new Error(`connect ${url}: timed out after ${timeoutMs} ms`)); }, timeoutMs);
    session.once("connect", () => { clearTimeout(timer); resolve(session); });
    session.once("error", (err) => { clearTimeout(timer); reject(err); });
    // Errors after connect surface on the streams; a session error without a listener would crash.
    session.on("error", () => {});
  });
}

const headersByPath = new Map<string, http2.OutgoingHttpHeaders>();

/** Request headers for an RPC path, built once per path. */
function requestHeaders(path: string): http2.OutgoingHttpHeaders {
  let h = headersByPath.get(path);
  if (!h) {
    h = { ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" };
    headersByPath.set(path, h);
  }
  return h;
}

/** Status of a finished call: grpc-status from trailers (or a trailers-only reply), else what went wrong. */
class CallStatus {
  status: string | undefined;
  message = "";

  fromHeaders(h: http2.IncomingHttpHeaders): void {
    const s = h["grpc-status"];
    if (s !== undefined) {
      this.status = String(s);
      this.message = decodeURIComponent(String(h["grpc-message"] ?? ""));
    } else if (h[":status"] !== undefined && Number(h[":status"]) !== 200) {
      this.status = "http";
      this.message = `HTTP ${h[":status"]}`;
    }
  }

  /** undefined when the call succeeded, else a short description. */
  error(rstCode: number | undefined): string | undefined {
    if (this.status === "0") return undefined;
    if (this.status === undefined) return `stream closed without grpc-status (rst ${rstCode ?? "none"})`;
    return `grpc-status ${this.status}: ${this.message}`;
  }
}

export type UnaryCallback = (error: string | undefined, reply: Buffer | undefined) => void;

/** One unary call. `wantReply` keeps the reply message; otherwise the bytes are read and dropped. */
export function unary(session: http2.ClientHttp2Session, path: string, request: Buffer, done: UnaryCallback, wantReply = false): void {
  let req: http2.ClientHttp2Stream;
  try {
    req = session.request(requestHeaders(path), { endStream: false });
  } catch (err) {
    queueMicrotask(() => done(`request failed: ${(err as Error).message}`, undefined));
    return;
  }
  const status = new CallStatus();
  let reply: Buffer | undefined;
  req.on("response", (h) => status.fromHeaders(h));
  req.on("trailers", (h) => status.fromHeaders(h));
  if (wantReply) {
    const reader = new FrameReader((m) => { reply = Buffer.from(m); });
    req.on("data", (c: Buffer) => reader.push(c));
  } else {
    req.resume();
  }
  req.on("error", () => {});
  req.on("close", () => done(status.error(req.rstCode), reply));
  req.end(request);
}

/** unary() as a promise that rejects on any non-OK status; for setup calls, not the hot loop. */
export function unaryAsync(session: http2.ClientHttp2Session, path: string, request: Buffer, timeoutMs = 10_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${path}: no reply within ${timeoutMs} ms`)), timeoutMs);
    unary(session, path, request, (err, reply) => {
      clearTimeout(timer);
      if (err) reject(new Error(`${path}: ${err}`));
      else resolve(reply ?? Buffer.alloc(0));
    }, true);
  });
}

export interface BidiStream {
  send(frame: Buffer): void;
  /** Cancels the stream (RST_STREAM CANCEL), as a client that is done with it does. */
  cancel(): void;
  readonly closed: boolean;
}

/** A bidi (or server) stream: every reply message goes to `onMessage`, the end to `onEnd`. */
export function bidi(session: http2.ClientHttp2Session, path: string, onMessage: (m: Buffer) => void, onEnd: (error: string | undefined) => void): BidiStream {
  const status = new CallStatus();
  let closed = false;
  let req: http2.ClientHttp2Stream;
  try {
    req = session.request(requestHeaders(path), { endStream: false });
  } catch (err) {
    closed = true;
    queueMicrotask(() => onEnd(`request failed: ${(err as Error).message}`));
    return { send() {}, cancel() {}, closed: true };
  }
  const reader = new FrameReader(onMessage);
  req.on("response", (h) => status.fromHeaders(h));
  req.on("trailers", (h) => status.fromHeaders(h));
  req.on("data", (c: Buffer) => {
    try { reader.push(c); } catch (err) { req.close(http2.constants.NGHTTP2_PROTOCOL_ERROR); status.status = "frame"; status.message = (err as Error).message; }
  });
  req.on("error", () => {});
  req.on("close", () => { closed = true; onEnd(status.error(req.rstCode)); });
  return {
    send(f) { if (!closed && !req.destroyed) req.write(f); },
    cancel() { if (!closed && !req.destroyed) req.close(http2.constants.NGHTTP2_CANCEL); },
    get closed() { return closed; },
  };
}
