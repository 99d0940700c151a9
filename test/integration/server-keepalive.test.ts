/**
 * --grpc-keepalive-interval / --grpc-keepalive-timeout: the listener pings its HTTP/2 clients and closes a
 * connection whose ping goes unanswered, as etcd's proxy does with grpc-go's server keepalive. A client that
 * speaks HTTP/2 (preface, SETTINGS, one request, SETTINGS ack) and then never acknowledges a PING is
 * disconnected; an ordinary client, whose HTTP/2 stack answers pings, keeps its connection and its calls
 * work. (The request makes the listener hand the connection to node:http2 at once: until a client's first
 * header block the listener holds the connection itself, for at most 10 s, listener/sniff.ts.)
 */
import * as http2 from "node:http2";
import { connect, type Socket } from "node:net";
import t from "tap";
import { startEtcd } from "../helpers/etcd.js";
import { sleep, waitFor } from "../helpers/ports.js";
import { startEdge } from "../helpers/proxy.js";
import { h2Frame } from "../helpers/raw-rpc.js";

const INTERVAL_MS = 300;
const TIMEOUT_MS = 300;

const etcd = await startEtcd(t);
const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`, `--grpc-keepalive-interval=${INTERVAL_MS}ms`, `--grpc-keepalive-timeout=${TIMEOUT_MS}ms`]);

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
const FRAME_HEADERS = 0x1;
const FRAME_SETTINGS = 0x4;
const FRAME_PING = 0x6;
const FLAG_ACK = 0x1;

const frame = (type: number, flags: number, payload?: Buffer, streamId = 0) => h2Frame(type, flags, streamId, payload);

/** HPACK by hand: static-table entries, and literals (without indexing) with an indexed name. */
function getRequest(path: string, authority: string): Buffer {
  const literal = (nameIndex: number, value: string) => Buffer.concat([Buffer.from([nameIndex, value.length]), Buffer.from(value, "latin1")]);
  // :method GET (2), :scheme http (6), :path (4), :authority (1)
  const block = Buffer.concat([Buffer.from([0x82, 0x86]), literal(4, path), literal(1, authority)]);
  const END_STREAM_AND_HEADERS = 0x1 | 0x4;
  return frame(FRAME_HEADERS, END_STREAM_AND_HEADERS, block, 1);
}

interface RawClient {
  socket: Socket;
  /** PING frames the proxy sent (not ACKs). */
  pings(): number;
  closedAt(): number | undefined;
}

/**
 * A hand-written HTTP/2 client: sends the preface, SETTINGS and a GET /health, acknowledges the proxy's
 * SETTINGS, and answers PINGs only when `answerPings`.
 */
function rawClient(port: number, answerPings: boolean): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let buf = Buffer.alloc(0);
    let pings = 0;
    let closedAt: number | undefined;
    socket.on("close", () => { closedAt = Date.now(); });
    socket.on("error", () => {});
    socket.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 9) {
        const length = buf.readUIntBE(0, 3);
        if (buf.length < 9 + length) break;
        const [type, flags] = [buf[3]!, buf[4]!];
        const payload = buf.subarray(9, 9 + length);
        buf = buf.subarray(9 + length);
        if (type === FRAME_SETTINGS && !(flags & FLAG_ACK)) socket.write(frame(FRAME_SETTINGS, FLAG_ACK));
        if (type === FRAME_PING && !(flags & FLAG_ACK)) {
          pings++;
          if (answerPings) socket.write(frame(FRAME_PING, FLAG_ACK, Buffer.from(payload)));
        }
      }
    });
    socket.once("connect", () => {
      socket.write(Buffer.concat([PREFACE, frame(FRAME_SETTINGS, 0), getRequest("/health", `127.0.0.1:${port}`)]));
      resolve({ socket, pings: () => pings, closedAt: () => closedAt });
    });
    socket.once("error", reject);
  });
}

t.test("a client that never acknowledges a PING is disconnected after the timeout", async (t) => {
  const started = Date.now();
  const silent = await rawClient(edge.port, false);
  t.teardown(() => silent.socket.destroy());
  await waitFor("the proxy to close the silent client's connection", () => silent.closedAt() !== undefined, 5_000);
  const after = silent.closedAt()! - started;
  t.ok(silent.pings() >= 1, `the proxy pinged it (${silent.pings()} PING frames)`);
  t.ok(after >= INTERVAL_MS + TIMEOUT_MS - 50, `not before interval + timeout (${after} ms)`);
  t.ok(after < 4 * (INTERVAL_MS + TIMEOUT_MS), `soon after (${after} ms)`);
  t.match(edge.output(), /did not acknowledge a keepalive ping within 300 ms \(--grpc-keepalive-timeout\): connection closed/);
});

t.test("clients that answer pings keep their connection", async (t) => {
  const polite = await rawClient(edge.port, true);
  t.teardown(() => polite.socket.destroy());
  const session = http2.connect(edge.url);
  t.teardown(() => session.destroy());
  let sessionClosed = false;
  session.on("close", () => { sessionClosed = true; });
  session.on("error", () => {});
  const health = () => new Promise<string>((resolve, reject) => {
    const req = session.request({ ":path": "/health" });
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (d: string) => { body += d; });
    req.on("end", () => resolve(body));
    req.on("error", reject);
    req.end();
  });
  t.match(await health(), /^\{"health":"true","reason":""[,}]/, "a call before");
  await sleep(6 * (INTERVAL_MS + TIMEOUT_MS));
  t.ok(polite.pings() >= 3, `the raw client was pinged and answered (${polite.pings()} PINGs)`);
  t.equal(polite.closedAt(), undefined, "and its connection is still open");
  t.equal(sessionClosed, false, "node:http2's session (which answers pings itself) is still open");
  t.match(await health(), /^\{"health":"true","reason":""[,}]/, "and a call on it still works");
});
