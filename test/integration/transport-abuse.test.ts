/**
 * Transport abuse against the proxy in front of a real etcd, with raw sockets: each bound and timeout of the
 * listener (listener/server.ts TRANSPORT_BOUNDS, listener/sniff.ts) reached at its stated value, and after
 * each the proxy still answers /health and a Range. Frames are written by hand where a real HTTP/2 stack
 * would refuse to misbehave (rapid reset, CONTINUATION floods, streams past the advertised limit).
 */
import { readdirSync, readFileSync, mkdtempSync, rmSync } from "node:fs";
import * as http2 from "node:http2";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tls from "node:tls";
import { create, toBinary } from "@bufbuild/protobuf";
import t, { type Test } from "tap";
import { KV, Watch, WatchRequestSchema } from "../../gen/etcdserverpb/rpc_pb.js";
import { STREAM_RESET_LIMIT, TRANSPORT_BOUNDS } from "../../src/listener/server.js";
import { SNIFF_TIMEOUT_MS } from "../../src/listener/sniff.js";
import { WATCH_BUFFER_RESPONSES } from "../../src/upstream/watch/watch-stream.js";
import { clientFor, dec, enc } from "../helpers/clients.js";
import { startEtcd } from "../helpers/etcd.js";
import { sleep, waitFor } from "../helpers/ports.js";
import { metric } from "../helpers/prom.js";
import { startEdge, type EdgeProxy } from "../helpers/proxy.js";
import { frame as grpcFrame, h2Frame } from "../helpers/raw-rpc.js";
import { WatchSession } from "../helpers/watch-session.js";

/** The concurrent-stream limit this proxy advertises (--max-concurrent-streams). */
const MAX_STREAMS = 100;
/** nghttp2's fixed limit of CONTINUATION frames per header block (server.ts). */
const MAX_CONTINUATIONS = 8;

const etcd = await startEtcd(t);
const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`, `--max-concurrent-streams=${MAX_STREAMS}`]);
const tlsDir = mkdtempSync(join(tmpdir(), "etcd-edge-abuse-"));
t.teardown(() => rmSync(tlsDir, { recursive: true, force: true }));
const tlsEdge = await startEdge(t, [`--endpoints=${etcd.endpoint}`, "--auto-tls", `--data-dir=${tlsDir}`], { tls: true });
const kv = clientFor(KV, "grpc", edge.url);
await kv.put({ key: enc("abuse/probe"), value: enc("ok") });

const rssKb = (p: EdgeProxy) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p.process.pid}/status`, "utf8"))![1]);
const fds = (p: EdgeProxy) => readdirSync(`/proc/${p.process.pid}/fd`).length;

/** The proxy still serves: /health over HTTP/1.1 and a Range through it over a fresh HTTP/2 connection. */
async function stillServing(t: Test): Promise<void> {
  const health = await fetch(`${edge.url}/health`);
  t.equal(health.status, 200, "/health answers 200");
  const fresh = clientFor(KV, "grpc", edge.url);
  const r = await fresh.range({ key: enc("abuse/probe") }, { timeoutMs: 10_000 });
  t.equal(dec(r.kvs[0]!.value), "ok", "a Range through the proxy works");
}

// ---- HTTP/2 by hand -------------------------------------------------------------------------------------

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
const T = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, CONTINUATION: 9 } as const;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const CANCEL = 0x8;

const h2frame = h2Frame;

/** HPACK, literals without indexing only: `[static name index, value]` or `[name, value]`; lengths < 127 unless `long`. */
function hpack(fields: [number | string, string][]): Buffer {
  const str = (s: string) => {
    const b = Buffer.from(s, "latin1");
    if (b.length < 127) return Buffer.concat([Buffer.from([b.length]), b]);
    const len: number[] = [127];
    let n = b.length - 127;
    while (n >= 128) { len.push((n % 128) | 128); n = Math.floor(n / 128); }
    len.push(n);
    return Buffer.concat([Buffer.from(len), b]);
  };
  return Buffer.concat(fields.map(([name, value]) => {
    if (typeof name === "string") return Buffer.concat([Buffer.from([0]), str(name), str(value)]);
    const idx = name < 15 ? Buffer.from([name]) : Buffer.from([15, name - 15]);
    return Buffer.concat([idx, str(value)]);
  }));
}

const grpcRequest = (path: string, extra: [number | string, string][] = []) =>
  hpack([[2, "POST"], [6, "http"], [4, path], [1, "127.0.0.1"], [31, "application/grpc"], ["te", "trailers"], ...extra]);
const healthRequest = () => hpack([[2, "GET"], [6, "http"], [4, "/health"], [1, "127.0.0.1"]]);

interface Frame { type: number; flags: number; streamId: number; payload: Buffer }

/** A raw HTTP/2 client: preface and empty SETTINGS sent, the server's SETTINGS acknowledged, frames kept. */
class RawH2 {
  readonly frames: Frame[] = [];
  closed = false;
  private buf = Buffer.alloc(0);
  readonly socket: Socket;
  readonly done: Promise<void>;
  /** `ack`: acknowledge the proxy's SETTINGS; `first`: frames sent with the preface. */
  constructor(port: number, o: { ack?: boolean; first?: Buffer } = {}) {
    const ack = o.ack ?? true;
    this.socket = connect(port, "127.0.0.1");
    this.socket.on("error", () => {});
    this.done = new Promise((r) => this.socket.on("close", () => { this.closed = true; r(); }));
    this.socket.on("data", (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 9) {
        const len = this.buf.readUIntBE(0, 3);
        if (this.buf.length < 9 + len) break;
        const f = { type: this.buf[3]!, flags: this.buf[4]!, streamId: this.buf.readUInt32BE(5) & 0x7fffffff, payload: this.buf.subarray(9, 9 + len) };
        this.buf = this.buf.subarray(9 + len);
        this.frames.push(f);
        if (f.type === T.SETTINGS && !(f.flags & 1) && ack) this.write(h2frame(T.SETTINGS, 1, 0));
        if (f.type === T.PING && f.flags & 1) this.pongs++;
      }
    });
    this.write(Buffer.concat([PREFACE, h2frame(T.SETTINGS, 0, 0), o.first ?? Buffer.alloc(0)]));
  }
  pongs = 0;
  /** A PING and its ACK: every frame sent before it has been read by the proxy. */
  async roundTrip(): Promise<void> {
    const want = this.pongs + 1;
    this.write(h2frame(T.PING, 0, 0, Buffer.alloc(8)));
    await waitFor("a PING ACK or the end", () => this.pongs >= want || this.ended(), 10_000);
  }
  write(b: Buffer): boolean {
    if (this.closed || this.socket.destroyed) return false;
    return this.socket.write(b);
  }
  /** Resolves when the socket drains (or closes). */
  drained(): Promise<void> {
    if (this.closed || !this.socket.writableNeedDrain) return Promise.resolve();
    return new Promise((r) => { this.socket.once("drain", r); void this.done.then(r); });
  }
  goaway(): { lastStreamId: number; code: number } | undefined {
    const g = this.frames.find((f) => f.type === T.GOAWAY);
    return g ? { lastStreamId: g.payload.readUInt32BE(0) & 0x7fffffff, code: g.payload.readUInt32BE(4) } : undefined;
  }
  resets(): Map<number, number> {
    return new Map(this.frames.filter((f) => f.type === T.RST_STREAM).map((f) => [f.streamId, f.payload.readUInt32BE(0)]));
  }
  /** Sends GET /health on `streamId` and waits for its response HEADERS (the connection is then nghttp2's). */
  async health(streamId: number): Promise<void> {
    this.write(h2frame(T.HEADERS, END_HEADERS | END_STREAM, streamId, healthRequest()));
    await waitFor(`/health answer on stream ${streamId}`, () => this.frames.some((f) => f.type === T.HEADERS && f.streamId === streamId), 10_000);
  }
  /** Ended by the proxy: GOAWAY received or the socket closed. */
  ended(): boolean {
    return this.closed || this.goaway() !== undefined;
  }
  close(): void {
    this.socket.destroy();
  }
}

// ---- the tests ------------------------------------------------------------------------------------------

t.test(`many streams on one connection: past ${MAX_STREAMS} concurrent (--max-concurrent-streams) the connection ends; unacknowledged, refused until ${TRANSPORT_BOUNDS.maxSessionInvalidFrames} refusals`, async (t) => {
  const watch = () => grpcRequest("/etcdserverpb.Watch/Watch");
  // A client that acknowledged the limit and opens one stream past it: nghttp2 treats it as a protocol
  // error and ends the connection (GOAWAY); its other streams go with it.
  const c = new RawH2(edge.port);
  t.teardown(() => c.close());
  await c.health(1);
  await waitFor("the proxy's SETTINGS", () => c.frames.some((f) => f.type === T.SETTINGS && !(f.flags & 1) && f.payload.length > 0), 10_000);
  let id = 3;
  for (let i = 0; i < MAX_STREAMS; i++, id += 2) c.write(h2frame(T.HEADERS, END_HEADERS, id, watch()));
  await c.roundTrip();
  t.equal(c.resets().size, 0, `${MAX_STREAMS} Watch streams open`);
  t.notOk(c.ended(), "the connection goes on");
  c.write(h2frame(T.HEADERS, END_HEADERS, id, watch()));
  await waitFor("the connection ended", () => c.ended(), 10_000);
  t.comment(`stream ${MAX_STREAMS + 1}: GOAWAY ${JSON.stringify(c.goaway())}`);
  await stillServing(t);

  // A client that never acknowledges the proxy's SETTINGS (first request sent with the preface, so the
  // listener sends none of its own): each stream past the limit is refused, and the connection ends
  // once the refusals (invalid frames to nghttp2) pass maxSessionInvalidFrames.
  const u = new RawH2(edge.port, { ack: false, first: h2frame(T.HEADERS, END_HEADERS | END_STREAM, 1, healthRequest()) });
  t.teardown(() => u.close());
  await waitFor("/health answered", () => u.frames.some((f) => f.type === T.HEADERS && f.streamId === 1), 10_000);
  id = 3;
  for (let i = 0; i < MAX_STREAMS; i++, id += 2) u.write(h2frame(T.HEADERS, END_HEADERS, id, watch()));
  const firstExtra = id;
  for (let i = 0; i < 10; i++, id += 2) u.write(h2frame(T.HEADERS, END_HEADERS, id, watch()));
  await u.roundTrip();
  t.same([...u.resets().keys()].sort((x, y) => x - y), Array.from({ length: 10 }, (_, i) => firstExtra + 2 * i), `the ${MAX_STREAMS} open, the 10 past the limit reset`);
  t.same([...new Set(u.resets().values())], [0x7], "REFUSED_STREAM");
  t.notOk(u.ended(), "the connection goes on");
  await stillServing(t);
  while (!u.ended() && id < 2 * (MAX_STREAMS + 3 * TRANSPORT_BOUNDS.maxSessionInvalidFrames)) {
    for (let i = 0; i < 50; i++, id += 2) u.write(h2frame(T.HEADERS, END_HEADERS, id, watch()));
    await u.roundTrip();
  }
  await waitFor("the connection ended", () => u.ended(), 10_000);
  const refused = [...u.resets().values()].filter((code) => code === 0x7).length;
  t.ok(refused >= TRANSPORT_BOUNDS.maxSessionInvalidFrames - 10 && refused <= TRANSPORT_BOUNDS.maxSessionInvalidFrames + 60, `ended after ${refused} refusals (bound ${TRANSPORT_BOUNDS.maxSessionInvalidFrames})`);
  t.comment(`unacknowledged: GOAWAY ${JSON.stringify(u.goaway())}, ${refused} refused`);

  // A client that honours the limit queues: 3 × MAX_STREAMS Ranges at once on one connection, all answered.
  const session = http2.connect(edge.url);
  t.teardown(() => session.destroy());
  const rangeClient = clientFor(KV, "grpc", edge.url);
  const answers = await Promise.all(Array.from({ length: 3 * MAX_STREAMS }, () => rangeClient.range({ key: enc("abuse/probe") }, { timeoutMs: 20_000 })));
  t.equal(answers.filter((r) => r.kvs.length === 1).length, 3 * MAX_STREAMS, `${3 * MAX_STREAMS} Ranges at once over one connection, all answered`);
  await stillServing(t);
});

t.test("500 connections at once: served, and the proxy's open files return when they close", async (t) => {
  const before = fds(edge);
  const sessions: http2.ClientHttp2Session[] = [];
  const sockets: Socket[] = [];
  const statuses: number[] = [];
  await Promise.all(Array.from({ length: 500 }, async (_, i) => {
    if (i % 2 === 0) {
      const s = http2.connect(edge.url);
      s.on("error", () => {});
      sessions.push(s);
      statuses.push(await new Promise<number>((resolve) => {
        const req = s.request({ ":path": "/health" });
        req.on("response", (h) => resolve(Number(h[":status"])));
        req.on("error", () => resolve(0));
        req.resume();
        req.end();
      }));
    } else {
      const sock = connect(edge.port, "127.0.0.1");
      sock.on("error", () => {});
      sockets.push(sock);
      statuses.push(await new Promise<number>((resolve) => {
        sock.once("data", (d: Buffer) => resolve(Number(/^HTTP\/1\.1 (\d+)/.exec(d.toString())?.[1] ?? 0)));
        sock.once("close", () => resolve(0));
        sock.write("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
      }));
    }
  }));
  t.equal(statuses.filter((s) => s === 200).length, 500, "every connection is answered 200");
  const during = fds(edge);
  t.ok(during >= before + 490, `the proxy holds them open (${before} → ${during} fds)`);
  await stillServing(t);
  for (const s of sessions) s.destroy();
  for (const s of sockets) s.destroy();
  await waitFor("the proxy's open files back to where they were", () => fds(edge) <= before + 10, 20_000);
  t.comment(`fds: ${before} before, ${during} with 500 connections, ${fds(edge)} after`);
  await stillServing(t);
});

t.test(`oversized headers: HTTP/2 over ${TRANSPORT_BOUNDS.maxHeaderListBytes} bytes reset, HTTP/1.1 over ${TRANSPORT_BOUNDS.maxHttp1HeaderBytes} bytes closed`, async (t) => {
  // HTTP/2: a header block of maxHeaderListBytes + 4 KiB, in a HEADERS and 4 CONTINUATION frames (under
  // nghttp2's CONTINUATION limit), as the second request: the first header block is the sniffer's.
  const c = new RawH2(edge.port);
  t.teardown(() => c.close());
  await c.health(1);
  // 9 fields of 8 KiB: over the header-list bound, each field under nghttp2's 64 KiB per field.
  const sendBlock = (streamId: number, block: Buffer) => {
    const parts = Math.ceil(block.length / 16_384);
    for (let i = 0; i < parts; i++) {
      const last = i === parts - 1;
      c.write(h2frame(i === 0 ? T.HEADERS : T.CONTINUATION, (last ? END_HEADERS : 0) | (i === 0 ? END_STREAM : 0), streamId, block.subarray(i * 16_384, (i + 1) * 16_384)));
    }
    return parts;
  };
  const fields = Array.from({ length: 9 }, (_, i): [string, string] => [`x-big-${i}`, "a".repeat(8 * 1024)]);
  t.ok(sendBlock(3, grpcRequest("/etcdserverpb.KV/Range", fields)) <= MAX_CONTINUATIONS + 1, "under the CONTINUATION limit");
  await waitFor("stream 3 reset", () => c.resets().has(3) || c.ended(), 10_000);
  t.notOk(c.ended(), "the connection goes on");
  t.notOk(c.frames.some((f) => f.type === T.HEADERS && f.streamId === 3), "no answer to the oversized request");
  t.comment(`HTTP/2, 72 KiB in 9 fields: RST_STREAM code ${c.resets().get(3)}`);
  await c.health(5);
  // One field of 70 KiB: past nghttp2's per-field limit, a compression error ends the connection.
  sendBlock(7, grpcRequest("/etcdserverpb.KV/Range", [["x-big", "a".repeat(70 * 1024)]]));
  await waitFor("the connection ended", () => c.ended(), 10_000);
  t.comment(`HTTP/2, one 70 KiB field: GOAWAY ${JSON.stringify(c.goaway())}`);

  // HTTP/1.1: headers of maxHttp1HeaderBytes + 1 KiB.
  const sock = connect(edge.port, "127.0.0.1");
  sock.on("error", () => {});
  let answer = "";
  sock.on("data", (d: Buffer) => { answer += d.toString(); });
  const closed = new Promise((r) => sock.on("close", r));
  sock.write(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(TRANSPORT_BOUNDS.maxHttp1HeaderBytes + 1024)}\r\n\r\n`);
  await closed;
  t.notMatch(answer, /^HTTP\/1\.1 200/, `HTTP/1.1: no 200, connection closed (${JSON.stringify(answer.split("\r\n")[0] ?? "")})`);
  await stillServing(t);
});

t.test(`slow headers: HTTP/1.1 cut after ${TRANSPORT_BOUNDS.headersTimeoutMs} ms (cleartext and TLS), a partial preface after ${SNIFF_TIMEOUT_MS} ms, a TLS handshake after ${TRANSPORT_BOUNDS.tlsHandshakeTimeoutMs} ms`, async (t) => {
  const slack = 8_000;
  // Each client keeps sending a little (every 500 ms), never finishing; resolves with how long it lasted.
  const dribble = (socket: Socket | tls.TLSSocket, first: string, more: (i: number) => string | undefined) => new Promise<number>((resolve) => {
    const start = Date.now();
    socket.on("error", () => {});
    let i = 0;
    const timer = setInterval(() => {
      const next = more(i++);
      if (next !== undefined && !socket.destroyed) socket.write(next);
    }, 500);
    socket.on("close", () => { clearInterval(timer); resolve(Date.now() - start); });
    if (first) socket.write(first);
    setTimeout(() => socket.destroy(), TRANSPORT_BOUNDS.headersTimeoutMs + SNIFF_TIMEOUT_MS + slack * 2).unref();
  });
  const header = (i: number) => `X-Slow-${i}: ${"b".repeat(10)}\r\n`;
  const tlsSocket = () => tls.connect({ host: "127.0.0.1", port: tlsEdge.port, rejectUnauthorized: false, ALPNProtocols: ["http/1.1"] });
  const [h1, h1Tls, preface, handshake] = await Promise.all([
    dribble(connect(edge.port, "127.0.0.1"), "GET /health HTTP/1.1\r\nHost: x\r\n", header),
    new Promise<number>((resolve) => { const s = tlsSocket(); s.once("secureConnect", () => void dribble(s, "GET /health HTTP/1.1\r\nHost: x\r\n", header).then(resolve)); }),
    // Part of the preface, then nothing.
    dribble(connect(edge.port, "127.0.0.1"), "PRI * HTTP/2.0\r\n", () => undefined),
    // A TCP connection to the TLS port that sends a byte at a time of nothing TLS-shaped... and then nothing at all.
    dribble(connect(tlsEdge.port, "127.0.0.1"), "", () => undefined),
  ]);
  const within = (ms: number, bound: number, what: string) => t.ok(ms >= bound - 1_000 && ms <= bound + slack, `${what}: closed after ${ms} ms (bound ${bound} ms)`);
  within(h1, TRANSPORT_BOUNDS.headersTimeoutMs, "HTTP/1.1 slow headers");
  within(h1Tls, TRANSPORT_BOUNDS.headersTimeoutMs, "HTTP/1.1 over TLS slow headers");
  within(preface, SNIFF_TIMEOUT_MS, "partial HTTP/2 preface");
  within(handshake, TRANSPORT_BOUNDS.tlsHandshakeTimeoutMs, "TLS handshake never started");
  await stillServing(t);
});

t.test("slow body: a unary call whose body never completes ends DeadlineExceeded at its grpc-timeout", async (t) => {
  const s = http2.connect(edge.url);
  t.teardown(() => s.destroy());
  const start = Date.now();
  let closedReq: http2.ClientHttp2Stream | undefined;
  const status = await new Promise<string | undefined>((resolve) => {
    const req = s.request({ ":method": "POST", ":path": "/etcdserverpb.KV/Range", "content-type": "application/grpc", te: "trailers", "grpc-timeout": "2S" });
    let st: string | undefined;
    const seen = (h: http2.IncomingHttpHeaders) => { st ??= h["grpc-status"] as string | undefined; if (st !== undefined) resolve(st); };
    req.on("response", seen);
    req.on("trailers", seen);
    req.on("close", () => resolve(st));
    closedReq = req;
    req.resume();
    // A frame that says 100 bytes follow, and 10 of them; the body is never ended.
    req.write(grpcFrame(Buffer.alloc(100)).subarray(0, 15));
  });
  const took = Date.now() - start;
  await waitFor("the proxy to end the stream after its status", () => closedReq?.closed === true, 5_000);
  t.equal(closedReq?.rstCode, http2.constants.NGHTTP2_NO_ERROR, "request side ended by the proxy, RST_STREAM NO_ERROR (as grpc-go)");
  t.equal(status, "4", "DeadlineExceeded");
  t.ok(took >= 1_900 && took < 10_000, `after ${took} ms (grpc-timeout 2 s)`);
  await stillServing(t);
});

t.test(`rapid reset: a connection that opens and cancels streams past the reset limit (burst ${STREAM_RESET_LIMIT.streamResetBurst} where honoured) is ended`, async (t) => {
  const c = new RawH2(edge.port);
  t.teardown(() => c.close());
  await c.health(1);
  // A bystander with a watch on another connection.
  const bystander = new WatchSession(clientFor(Watch, "grpc", edge.url));
  await bystander.createAndWait({ key: enc("abuse/rr") });
  const before = rssKb(edge);
  let id = 3;
  let sent = 0;
  const rst = Buffer.alloc(4);
  rst.writeUInt32BE(CANCEL);
  while (!c.ended() && sent < 3 * STREAM_RESET_LIMIT.streamResetBurst) {
    const batch: Buffer[] = [];
    for (let i = 0; i < 200; i++, id += 2, sent++) batch.push(h2frame(T.HEADERS, END_HEADERS, id, grpcRequest("/etcdserverpb.KV/Range")), h2frame(T.RST_STREAM, 0, id, rst));
    c.write(Buffer.concat(batch));
    await c.roundTrip();
  }
  await waitFor("the connection ended", () => c.ended(), 10_000);
  t.ok(sent < 3 * STREAM_RESET_LIMIT.streamResetBurst, `ended after ${sent} HEADERS + RST_STREAM pairs`);
  t.comment(`GOAWAY: ${JSON.stringify(c.goaway())}, pairs sent: ${sent}, RSS ${before} → ${rssKb(edge)} kB`);
  await kv.put({ key: enc("abuse/rr"), value: enc("after") });
  await waitFor("the bystander sees the put", () => bystander.received.some((r) => r.events.some((e) => dec(e.kv!.value) === "after")), 10_000);
  t.notOk(bystander.ended, "the bystander's watch is unaffected");
  bystander.close();
  await stillServing(t);
});

t.test(`CONTINUATION flood: cut after ${MAX_CONTINUATIONS} CONTINUATION frames, as the first header block and a later one; memory bounded`, async (t) => {
  // The bound itself: a header block in HEADERS + 8 CONTINUATIONs is answered, one in HEADERS + 9 ends the connection.
  for (const n of [MAX_CONTINUATIONS, MAX_CONTINUATIONS + 1]) {
    const c = new RawH2(edge.port);
    t.teardown(() => c.close());
    await c.health(1);
    const frames = [h2frame(T.HEADERS, END_STREAM, 3, grpcRequest("/etcdserverpb.KV/Range"))];
    for (let i = 1; i <= n; i++) frames.push(h2frame(T.CONTINUATION, i === n ? END_HEADERS : 0, 3, hpack([[`x-c-${i}`, "c".repeat(200)]])));
    c.write(Buffer.concat(frames));
    await waitFor("an answer or the end", () => c.ended() || c.frames.some((f) => f.type === T.HEADERS && f.streamId === 3), 10_000);
    if (n === MAX_CONTINUATIONS) t.notOk(c.ended(), `HEADERS + ${n} CONTINUATION: answered, the connection goes on`);
    else t.ok(c.ended(), `HEADERS + ${n} CONTINUATION: the connection ended (GOAWAY ${JSON.stringify(c.goaway())})`);
    c.close();
  }
  const before = rssKb(edge);
  for (const first of [true, false]) {
    const c = new RawH2(edge.port);
    t.teardown(() => c.close());
    if (!first) await c.health(1);
    const streamId = first ? 1 : 3;
    // HEADERS without END_HEADERS, then CONTINUATIONs of 1 KiB each holding one valid header field.
    c.write(h2frame(T.HEADERS, 0, streamId, grpcRequest("/etcdserverpb.KV/Range")));
    const continuation = h2frame(T.CONTINUATION, 0, streamId, hpack([["x-c", "c".repeat(1000)]]));
    let sent = 0;
    while (!c.ended() && sent < 10_000) {
      c.write(Buffer.concat(Array(100).fill(continuation)));
      sent += 100;
      // (No PING here: any frame but CONTINUATION inside a header block is itself a protocol error.)
      await c.drained();
      await sleep(5);
    }
    await waitFor("the connection ended", () => c.ended(), 15_000);
    t.ok(c.ended(), `${first ? "first" : "later"} header block: connection ended after ${sent} CONTINUATION frames sent (${sent} KiB)`);
    t.ok(sent < 10_000, "long before the flood was over");
    if (!first) t.ok(c.goaway() !== undefined, "with GOAWAY");
    t.comment(`GOAWAY: ${JSON.stringify(c.goaway())}`);
  }
  const after = rssKb(edge);
  t.ok(after - before < 64 * 1024, `RSS ${before} → ${after} kB`);
  await stillServing(t);
});

t.test(`a watch client that never reads: parked at ${WATCH_BUFFER_RESPONSES} buffered responses, other watchers of the range get every event, RSS bounded`, async (t) => {
  const prefix = "abuse/nr/";
  const key = enc(prefix);
  const rangeEnd = enc("abuse/nr0");
  const before = rssKb(edge);
  // The one that never reads: node:http2, its stream paused (flow control fills, then the proxy's buffer).
  const s = http2.connect(edge.url);
  s.on("error", () => {});
  t.teardown(() => s.destroy());
  const req = s.request({ ":method": "POST", ":path": "/etcdserverpb.Watch/Watch", "content-type": "application/grpc", te: "trailers" });
  req.on("error", () => {});
  req.pause();
  req.write(grpcFrame(toBinary(WatchRequestSchema, create(WatchRequestSchema, { requestUnion: { case: "createRequest", value: { key, rangeEnd } } }))));
  // A reader of the same range.
  const reader = new WatchSession(clientFor(Watch, "grpc", edge.url));
  await reader.createAndWait({ key, rangeEnd });
  await sleep(500);
  const puts = 50 * Math.ceil((WATCH_BUFFER_RESPONSES + 500) / 50);
  const value = enc("v".repeat(1024));
  for (let i = 0; i < puts; i += 50) await Promise.all(Array.from({ length: 50 }, (_, j) => kv.put({ key: enc(`${prefix}${i + j}`), value })));
  await waitFor("the reader has every event", () => reader.received.reduce((n, r) => n + r.events.length, 0) >= puts, 30_000);
  const keys = reader.received.flatMap((r) => r.events.map((e) => dec(e.kv!.key)));
  t.equal(keys.length, puts, `the reader got ${puts} events`);
  t.equal(new Set(keys).size, puts, "each put once");
  await waitFor("the non-reader's watcher parked", async () => (await metric(edge.url, "etcd_edge_watch_parked_watchers")) >= 1, 10_000);
  t.ok(await metric(edge.url, "etcd_edge_watch_buffered_responses") <= WATCH_BUFFER_RESPONSES + 1, `at most ${WATCH_BUFFER_RESPONSES} responses buffered`);
  const after = rssKb(edge);
  t.ok(after - before < 96 * 1024, `RSS ${before} → ${after} kB`);
  reader.close();
  s.destroy();
  await waitFor("no client watcher left", async () => (await metric(edge.url, "etcd_edge_client_watchers")) === 0, 10_000);
  await stillServing(t);
});
