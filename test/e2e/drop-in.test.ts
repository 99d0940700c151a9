/**
 * Drop-in details that clients depend on, each compared with etcd or checked against the protocol:
 * gRPC-Web text mode (Google's grpc-web client's default), Connect's Unimplemented for an unknown RPC,
 * etcd's grpc-message bytes on every path, a 30-day deadline, and a request that once ended the process.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as http2 from "node:http2";
import t from "tap";
import {
  PutRequestSchema, RangeRequestSchema, RangeResponseSchema, RequestOpSchema, TxnRequestSchema, WatchResponseSchema,
  LeaseRevokeRequestSchema, WatchCreateRequestSchema,
} from "../../gen/etcdserverpb/rpc_pb.js";
import { enc } from "../helpers/clients.js";
import { startEtcd } from "../helpers/etcd.js";
import { startEdge } from "../helpers/proxy.js";
import { frame, raw } from "../helpers/raw-rpc.js";

const etcd = await startEtcd(t);
const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`]);

/** The frames of a gRPC-Web body: [flag, bytes][]. */
function frames(body: Buffer): [number, Buffer][] {
  const out: [number, Buffer][] = [];
  for (let at = 0; at + 5 <= body.length;) {
    const len = body.readUInt32BE(at + 1);
    out.push([body[at]!, body.subarray(at + 5, at + 5 + len)]);
    at += 5 + len;
  }
  return out;
}

async function put(key: string, value: string): Promise<void> {
  const res = await fetch(`${edge.url}/etcdserverpb.KV/Put`, { method: "POST", headers: { "content-type": "application/proto" }, body: toBinary(PutRequestSchema, create(PutRequestSchema, { key: enc(key), value: enc(value) })) });
  t.equal(res.status, 200);
}

t.test("gRPC-Web text: a unary Range returns the value, over HTTP/1.1", async (t) => {
  await put("text-key", "text-value");
  const body = frame(toBinary(RangeRequestSchema, create(RangeRequestSchema, { key: enc("text-key") }))).toString("base64");
  const res = await fetch(`${edge.url}/etcdserverpb.KV/Range`, { method: "POST", headers: { "content-type": "application/grpc-web-text", "x-grpc-web": "1" }, body });
  t.equal(res.status, 200);
  t.match(res.headers.get("content-type"), /^application\/grpc-web-text/);
  const decoded = Buffer.concat((await res.text()).match(/[A-Za-z0-9+/]+=*/g)!.map((s) => Buffer.from(s, "base64")));
  const [[flag, message], [trailerFlag, trailer]] = frames(decoded) as [[number, Buffer], [number, Buffer]];
  t.equal(flag, 0);
  t.equal(new TextDecoder().decode(fromBinary(RangeResponseSchema, message).kvs[0]?.value), "text-value");
  t.equal(trailerFlag, 0x80);
  t.match(trailer.toString(), /grpc-status: ?0/);
});

t.test("gRPC-Web text: a server stream (etcdedge.v1.Edge/Watch) delivers events", async (t) => {
  const body = frame(toBinary(WatchCreateRequestSchema, create(WatchCreateRequestSchema, { key: enc("text-watch") }))).toString("base64");
  const abort = new AbortController();
  const res = await fetch(`${edge.url}/etcdedge.v1.Edge/Watch`, { method: "POST", headers: { "content-type": "application/grpc-web-text+proto" }, body, signal: abort.signal });
  t.equal(res.status, 200);
  const reader = res.body!.getReader();
  let text = "";
  const responses: ReturnType<typeof fromBinary<typeof WatchResponseSchema>>[] = [];
  const wanted = async (n: number) => {
    while (responses.length < n) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
      const whole = text.length - (text.length % 4);
      const parts = text.slice(0, whole).match(/[A-Za-z0-9+/]+=*/g) ?? [];
      const bytes = Buffer.concat(parts.map((s) => Buffer.from(s, "base64")));
      responses.length = 0;
      for (const [flag, m] of frames(bytes)) if (flag === 0) responses.push(fromBinary(WatchResponseSchema, m));
    }
  };
  await wanted(1);
  t.ok(responses[0]?.created, "created");
  await put("text-watch", "v1");
  await wanted(2);
  t.equal(new TextDecoder().decode(responses[1]?.events[0]?.kv?.value), "v1", "the event arrives");
  abort.abort();
});

t.test("Connect: an unknown RPC is Unimplemented in Connect's JSON, not a 404 page", async (t) => {
  const variants: Record<string, string>[] = [{ "content-type": "application/json" }, { "content-type": "application/proto" }, { "content-type": "application/json", "connect-protocol-version": "1" }];
  for (const headers of variants) {
    const res = await fetch(`${edge.url}/etcdserverpb.KV/Nope`, { method: "POST", headers, body: "{}" });
    t.equal(res.status, 501, "Connect's HTTP status for unimplemented (connect-es codeToHttpStatus)");
    t.match(res.headers.get("content-type"), /^application\/json/);
    t.same(await res.json(), { code: "unimplemented", message: "unknown service or method /etcdserverpb.KV/Nope" });
  }
});

/** One native gRPC call on a fresh session, the status as the raw header bytes. */
async function grpcCall(url: string, path: string, body: Uint8Array, headers: http2.OutgoingHttpHeaders = {}) {
  const session = http2.connect(url);
  try {
    const a = await raw(session, path, { "content-type": "application/grpc", te: "trailers", ...headers }, frame(body));
    return { status: String(a.trailers["grpc-status"] ?? a.headers["grpc-status"]), message: String(a.trailers["grpc-message"] ?? a.headers["grpc-message"] ?? ""), body: a.body };
  } finally {
    session.close();
  }
}

t.test("grpc-message: byte for byte what etcd sends, on the fast path and through connect-es", async (t) => {
  const revoke = toBinary(LeaseRevokeRequestSchema, create(LeaseRevokeRequestSchema, { ID: 424242n }));
  const direct = await grpcCall(`http://${etcd.endpoint}`, "/etcdserverpb.Lease/LeaseRevoke", revoke);
  const proxied = await grpcCall(edge.url, "/etcdserverpb.Lease/LeaseRevoke", revoke);
  t.equal(direct.message, "etcdserver: requested lease not found", "etcd's bytes");
  t.same(proxied, direct, "fast path: the same status and bytes");
  // gzip-compressed request: connect-es's handlers answer it.
  const { gzipSync } = await import("node:zlib");
  const gz = Buffer.concat([Buffer.from([1, 0, 0, 0, 0]), gzipSync(revoke)]);
  gz.writeUInt32BE(gz.length - 5, 1);
  const session = http2.connect(edge.url);
  const a = await raw(session, "/etcdserverpb.Lease/LeaseRevoke", { "content-type": "application/grpc", te: "trailers", "grpc-encoding": "gzip" }, gz);
  session.close();
  t.equal(String(a.trailers["grpc-message"] ?? a.headers["grpc-message"]), "etcdserver: requested lease not found", "connect-es path: the same bytes");
});

t.test("a 30-day deadline (grpc-go's 2592000S) does not fire at once", async (t) => {
  await put("deadline-key", "v");
  const range = toBinary(RangeRequestSchema, create(RangeRequestSchema, { key: enc("deadline-key") }));
  const fast = await grpcCall(edge.url, "/etcdserverpb.KV/Range", range, { "grpc-timeout": "2592000S" });
  t.equal(fast.status, "0", "fast path");
  const gz = (await import("node:zlib")).gzipSync(range);
  const body = Buffer.concat([Buffer.from([1, 0, 0, 0, 0]), gz]);
  body.writeUInt32BE(gz.length, 1);
  const session = http2.connect(edge.url);
  const a = await raw(session, "/etcdserverpb.KV/Range", { "content-type": "application/grpc", te: "trailers", "grpc-encoding": "gzip", "grpc-timeout": "2592000S" }, body);
  session.close();
  t.equal(String(a.trailers["grpc-status"] ?? a.headers["grpc-status"]), "0", "connect-es path");
});

t.test("a Txn whose success branch nests a Txn of 224,000 puts does not end the process", async (t) => {
  const puts = Array.from({ length: 224_000 }, () => create(RequestOpSchema, { request: { case: "requestPut", value: { key: enc("a") } } }));
  const inner = create(TxnRequestSchema, { success: puts });
  const outer = toBinary(TxnRequestSchema, create(TxnRequestSchema, { success: [create(RequestOpSchema, { request: { case: "requestTxn", value: inner } })] }));
  t.ok(outer.length < 1.5 * 1024 * 1024, `${outer.length} bytes: under --max-send-bytes`);
  const a = await grpcCall(edge.url, "/etcdserverpb.KV/Txn", outer);
  t.not(a.status, "0", `refused by etcd (${a.status}: ${a.message})`);
  const after = await grpcCall(edge.url, "/etcdserverpb.KV/Range", toBinary(RangeRequestSchema, create(RangeRequestSchema, { key: enc("text-key") })));
  t.equal(after.status, "0", "the proxy still answers");
});
