/**
 * Speaking etcd's JSON gateway by hand, the way its real clients do: fetch (HTTP/1.1), curl (HTTP/1.1 and
 * h2c prior knowledge), a raw socket that sees each HTTP/1.1 chunk (python etcd3gw decodes chunk by
 * chunk), and a node:http2 stream that writes request objects one at a time while reading answers.
 */
import { spawn } from "node:child_process";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";

export interface Answer {
  status: number;
  contentType: string;
  body: string;
}

/** One request with fetch (undici, HTTP/1.1). `body` undefined: no body at all. */
export async function call(base: string, path: string, body?: string, o: { method?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const res = await fetch(base + path, { method: o.method ?? "POST", headers: o.headers ?? {}, ...(body === undefined ? {} : { body }) });
  return { status: res.status, contentType: res.headers.get("content-type") ?? "", body: await res.text() };
}

/**
 * What legitimately differs between two etcd clusters driven in lockstep: cluster and member IDs (they
 * come from each member's peer URL), and auth tokens (random). Revisions, lease IDs given by the test,
 * values and the JSON text itself must match byte for byte.
 */
export function normalize(text: string): string {
  return text
    .replace(/"(cluster_id|member_id|leader)":"\d+"/g, '"$1":"<id>"')
    .replace(/"token":"[^"]+"/g, '"token":"<token>"');
}

/** A response body read line by line as it streams (fetch). */
export class Lines {
  private buffered = "";
  private readonly decoder = new TextDecoder();
  constructor(private readonly reader: ReadableStreamDefaultReader<Uint8Array>) {}

  /** The next line (without its newline); fails after `ms` so a missing message names itself. */
  async next(what: string, ms = 10_000): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      const nl = this.buffered.indexOf("\n");
      if (nl >= 0) {
        const line = this.buffered.slice(0, nl);
        this.buffered = this.buffered.slice(nl + 1);
        return line;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} within ${ms} ms (have: ${JSON.stringify(this.buffered)})`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const r = await Promise.race([
        this.reader.read(),
        new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), left); }),
      ]).finally(() => clearTimeout(timer));
      if (r.done) throw new Error(`stream ended before ${what} (rest: ${JSON.stringify(this.buffered)})`);
      this.buffered += this.decoder.decode(r.value, { stream: true });
    }
  }

  /** Everything until the body ends (for streams that end by themselves). */
  async rest(ms = 10_000): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      const r = await Promise.race([this.reader.read(), new Promise<never>((_, reject) => setTimeout(() => reject(new Error("body did not end")), Math.max(1, deadline - Date.now())).unref())]);
      if (r.done) return this.buffered;
      this.buffered += this.decoder.decode(r.value, { stream: true });
    }
  }
}

/** A streaming POST with fetch; abort() ends it from the client side. */
export async function openStream(base: string, path: string, body: string, headers: Record<string, string> = {}): Promise<{ status: number; lines: Lines; abort(): void }> {
  const ac = new AbortController();
  const res = await fetch(base + path, { method: "POST", body, headers, signal: ac.signal });
  return { status: res.status, lines: new Lines(res.body!.getReader()), abort: () => ac.abort() };
}

export interface CurlResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Real curl; `--max-time` ends streams that stay open. */
export function curl(args: string[], timeoutMs = 20_000): Promise<CurlResult> {
  return new Promise((resolve) => {
    const proc = spawn("curl", ["-sS", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    proc.stdout.on("data", (d: Buffer) => { stdout += d.toString(); });
    proc.stderr.on("data", (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
    proc.on("exit", (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

/**
 * A POST over a raw socket that returns the HTTP/1.1 chunks of the answer as they were framed, until
 * `chunks` have arrived (then the socket is closed) or the answer ends.
 */
export function rawChunks(hostPort: string, path: string, body: string, chunks: number, timeoutMs = 10_000): Promise<{ head: string; chunks: string[] }> {
  const [host, port] = hostPort.split(":") as [string, string];
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(port), host);
    let buf = Buffer.alloc(0);
    let head: string | undefined;
    const got: string[] = [];
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`only ${got.length} of ${chunks} chunks within ${timeoutMs} ms: ${JSON.stringify(got)}`)); }, timeoutMs);
    const finish = () => { clearTimeout(timer); sock.destroy(); resolve({ head: head ?? "", chunks: got }); };
    sock.on("error", (err) => { clearTimeout(timer); reject(err); });
    sock.write(`POST ${path} HTTP/1.1\r\nHost: ${hostPort}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    sock.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (head === undefined) {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        head = buf.subarray(0, end).toString();
        buf = buf.subarray(end + 4);
      }
      for (;;) {
        const lineEnd = buf.indexOf("\r\n");
        if (lineEnd < 0) return;
        const size = parseInt(buf.subarray(0, lineEnd).toString(), 16);
        if (buf.length < lineEnd + 2 + size + 2) return;
        if (size === 0) return finish();
        got.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size).toString());
        buf = buf.subarray(lineEnd + 2 + size + 2);
        if (got.length >= chunks) return finish();
      }
    });
  });
}

export interface Duplex {
  /** Resolves when the answer's headers arrive (the gateway sends them with the first message: send first). */
  status: Promise<number>;
  /** Writes one JSON object to the still open request body. */
  send(obj: unknown): void;
  /** Ends the request body (a half-close). */
  end(): void;
  lines: Lines;
  close(): void;
}

/**
 * A bidi exchange: the request body stays open while the answer streams. "1.1" sends a chunked body
 * (etcd's gateway takes this too); "2" is h2c prior knowledge (the proxy only).
 */
export function duplex(base: string, path: string, version: "1.1" | "2", headers: Record<string, string> = {}): Duplex {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({ start(c) { controller = c; } });
  const onData = (d: Buffer) => controller.enqueue(new Uint8Array(d));
  const onEnd = () => { try { controller.close(); } catch { /* already errored */ } };
  const onError = (err: Error) => { try { controller.error(err); } catch { /* already closed */ } };
  let resolveStatus!: (n: number) => void;
  let rejectStatus!: (e: Error) => void;
  const status = new Promise<number>((res, rej) => { resolveStatus = res; rejectStatus = rej; });
  status.catch(() => {});
  if (version === "2") {
    const session = http2.connect(base);
    session.on("error", () => {});
    const req = session.request({ ":method": "POST", ":path": path, "content-type": "application/json", ...headers });
    req.on("response", (h) => resolveStatus(Number(h[":status"])));
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", (err) => { rejectStatus(err); onError(err); });
    return { status, send: (obj) => void req.write(JSON.stringify(obj)), end: () => void req.end(), lines: new Lines(body.getReader()), close: () => { req.close(); session.close(); } };
  }
  const req = http.request(base + path, { method: "POST", headers: { "content-type": "application/json", ...headers } });
  req.on("response", (res) => {
    resolveStatus(res.statusCode ?? 0);
    res.on("data", onData);
    res.on("end", onEnd);
    res.on("error", onError);
  });
  req.on("error", (err) => { rejectStatus(err); onError(err); });
  req.flushHeaders();
  return { status, send: (obj) => void req.write(JSON.stringify(obj)), end: () => void req.end(), lines: new Lines(body.getReader()), close: () => void req.destroy() };
}
