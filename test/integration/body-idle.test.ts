/**
 * Requests that start and never finish, without a deadline to end them:
 * - a unary call whose body stops arriving ends DeadlineExceeded after BODY_IDLE_MS (30 s) without a
 *   byte, naming the bound, and the proxy then ends the stream's request side (RST_STREAM NO_ERROR, as
 *   grpc-go does), so nothing of it is held;
 * - a first HTTP/2 header block begun and never finished: the connection is closed at SNIFF_TIMEOUT_MS
 *   (nghttp2 would wait for the rest of the block forever).
 * Both run at once (about 31 s).
 */
import * as http2 from "node:http2";
import { connect } from "node:net";
import t from "tap";
import { BODY_IDLE_MS } from "../../src/listener/fast/body-idle.js";
import { SNIFF_TIMEOUT_MS } from "../../src/listener/sniff.js";
import { grpcFrame } from "../../src/wire/frame.js";
import { startEtcd } from "../helpers/etcd.js";
import { startEdge } from "../helpers/proxy.js";
import { h2Frame } from "../helpers/raw-rpc.js";

const etcd = await startEtcd(t);
const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`]);

async function stuckBody(): Promise<{ ms: number; status: string | undefined; message: string; closedBy: "proxy" | "timeout"; rstCode: number }> {
  const s = http2.connect(edge.url);
  const start = Date.now();
  try {
    return await new Promise((resolve) => {
      const req = s.request({ ":method": "POST", ":path": "/etcdserverpb.KV/Range", "content-type": "application/grpc", te: "trailers" });
      let status: string | undefined;
      let message = "";
      const seen = (h: http2.IncomingHttpHeaders) => {
        if (h["grpc-status"] !== undefined) { status = String(h["grpc-status"]); message = decodeURIComponent(String(h["grpc-message"] ?? "")); }
      };
      req.on("response", seen);
      req.on("trailers", seen);
      req.on("error", () => {});
      const timer = setTimeout(() => resolve({ ms: Date.now() - start, status, message, closedBy: "timeout", rstCode: req.rstCode }), BODY_IDLE_MS + 15_000);
      req.on("close", () => { clearTimeout(timer); resolve({ ms: Date.now() - start, status, message, closedBy: "proxy", rstCode: req.rstCode }); });
      req.resume();
      // A frame that says 100 bytes follow, and 10 of them; the body is never ended.
      req.write(grpcFrame(new Uint8Array(100)).subarray(0, 15));
    });
  } finally {
    s.destroy();
  }
}

function unfinishedHeaders(): Promise<number> {
  return new Promise((resolve) => {
    const start = Date.now();
    const socket = connect(edge.port, "127.0.0.1");
    socket.on("error", () => {});
    socket.on("close", () => resolve(Date.now() - start));
    // Preface, empty SETTINGS, then HEADERS (:method POST, indexed) without END_HEADERS, and nothing more.
    socket.write(Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), h2Frame(4, 0, 0), h2Frame(1, 0, 1, Buffer.from([0x83]))]));
    setTimeout(() => socket.destroy(), SNIFF_TIMEOUT_MS + 20_000).unref();
  });
}

t.test(`a body stuck for ${BODY_IDLE_MS / 1000} s, and a header block never finished`, async (t) => {
  const [body, headers] = await Promise.all([stuckBody(), unfinishedHeaders()]);
  t.equal(body.status, "4", "DeadlineExceeded");
  t.match(body.message, /request body incomplete: nothing received for 30 s/, "naming the bound");
  t.ok(body.ms >= BODY_IDLE_MS - 500 && body.ms <= BODY_IDLE_MS + 5_000, `after ${body.ms} ms (bound ${BODY_IDLE_MS} ms)`);
  t.equal(body.closedBy, "proxy", "the proxy ended the stream");
  t.equal(body.rstCode, http2.constants.NGHTTP2_NO_ERROR, "with RST_STREAM NO_ERROR after the status");
  t.ok(headers >= SNIFF_TIMEOUT_MS - 500 && headers <= SNIFF_TIMEOUT_MS + 5_000, `unfinished header block: closed after ${headers} ms (bound ${SNIFF_TIMEOUT_MS} ms)`);
});
