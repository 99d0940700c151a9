/**
 * etcd's JSON gateway through the proxy answers as etcd's own gateway does. Differential: two fresh etcds
 * get the same requests in lockstep, one on its own gateway, one behind the proxy, so revisions match
 * and only cluster/member IDs and auth tokens are normalised. Bodies are compared as text, so field
 * order, omitted zero values, int64 strings, base64 and Go's escaping must all match.
 */
import * as http from "node:http";
import t from "tap";
import { startEtcd } from "../helpers/etcd.js";
import { call, curl, normalize, type Answer } from "../helpers/gateway.js";
import { startEdge } from "../helpers/proxy.js";

const direct = await startEtcd(t);
const behind = await startEtcd(t);
// A small --max-send-bytes so the size bounds can be reached cheaply: JSON bodies may be up to 128 KiB.
const MAX_SEND = 65536;
const edge = await startEdge(t, [`--endpoints=${behind.endpoint}`, `--max-send-bytes=${MAX_SEND}`]);

const b64 = (s: string) => Buffer.from(s).toString("base64");

type Tap = Pick<typeof t, "equal">;

/** The same request to etcd's gateway and to the proxy's; status, content type and body must match. */
async function same(t: Tap, path: string, body?: string, o: { method?: string; headers?: Record<string, string>; fix?: (s: string) => string } = {}): Promise<Answer> {
  const fix = o.fix ?? ((s: string) => s);
  const a = await call(direct.url, path, body, o);
  const b = await call(edge.url, path, body, o);
  // Printable ASCII only: a U+2028 in an assertion name would break the TAP stream.
  const what = `${o.method ?? "POST"} ${path} ${body ?? "(no body)"}`.slice(0, 200).replace(/[^\x20-\x7e]/g, "?");
  t.equal(b.status, a.status, `status of ${what}`);
  t.equal(b.contentType, a.contentType, `content type of ${what}`);
  t.equal(fix(normalize(b.body)), fix(normalize(a.body)), `body of ${what}`);
  return b;
}

t.test("GET /version names the etcd behind the proxy", async (t) => {
  const res = await same(t, "/version", undefined, { method: "GET" });
  t.match(JSON.parse(res.body), { etcdserver: /^3\.\d+\.\d+$/, etcdcluster: /^3\.\d+\.0$/ });
  await same(t, "/version", "", { method: "POST" });
});

t.test("KV: put, range, deleterange, txn and compaction answer as etcd does", async (t) => {
  for (const [k, v] of [["a", "1"], ["b", "<&>"], ["p/1", "x"], ["p/2", "y"], ["p/3", "z"]]) {
    await same(t, "/v3/kv/put", JSON.stringify({ key: b64(k!), value: b64(v!) }));
  }
  await same(t, "/v3/kv/put", JSON.stringify({ key: b64("a"), value: b64("2"), prev_kv: true }));
  await same(t, "/v3/kv/range", JSON.stringify({ key: b64("a") }));
  await same(t, "/v3/kv/range", JSON.stringify({ key: b64("p/"), range_end: b64("p0") }));
  await same(t, "/v3/kv/range", JSON.stringify({ key: b64("p/"), range_end: b64("p0"), limit: 2, sort_order: "DESCEND", sort_target: "KEY" }));
  await same(t, "/v3/kv/range", JSON.stringify({ key: b64("p/"), range_end: b64("p0"), count_only: true }));
  await same(t, "/v3/kv/range", JSON.stringify({ key: b64("p/"), range_end: b64("p0"), keys_only: true, serializable: true }));
  await same(t, "/v3/kv/range", JSON.stringify({ key: b64("a"), revision: "2" }));
  await same(t, "/v3/kv/range", JSON.stringify({ key: b64("missing") }));
  await same(t, "/v3/kv/range", JSON.stringify({ key: "AA==", range_end: "AA==" }));
  await same(t, "/v3/kv/deleterange", JSON.stringify({ key: b64("p/3"), prev_kv: true }));
  await same(t, "/v3/kv/deleterange", JSON.stringify({ key: b64("p/3") }));
  const txn = (version: number) => JSON.stringify({
    compare: [{ key: b64("a"), result: "EQUAL", target: "VERSION", version }],
    success: [{ request_put: { key: b64("t"), value: b64("ok") } }, { request_range: { key: b64("a") } }],
    failure: [{ request_delete_range: { key: b64("nothing") } }, { request_txn: {} }],
  });
  await same(t, "/v3/kv/txn", txn(2));
  await same(t, "/v3/kv/txn", txn(9));
  await same(t, "/v3/kv/compaction", JSON.stringify({ revision: 3 }));
  await same(t, "/v3/kv/range", JSON.stringify({ key: b64("a"), revision: 2 }));
  await same(t, "/v3/kv/range", JSON.stringify({ key: b64("a"), revision: 9999 }));
});

t.test("input: proto and lowerCamelCase names, numbers as strings, unknown fields, empty bodies", async (t) => {
  await same(t, "/v3/kv/range", JSON.stringify({ key: b64("p/"), rangeEnd: b64("p0"), keysOnly: true, sortOrder: 2, bogus: { x: 1 } }));
  await same(t, "/v3/kv/range", JSON.stringify({ key: b64("p/"), range_end: b64("p0"), limit: "1" }));
  await same(t, "/v3/kv/txn", JSON.stringify({ compare: [{ key: b64("a"), target: "CREATE", createRevision: "2" }], success: [{ requestRange: { key: b64("a") } }] }));
  await same(t, "/v3/kv/range", `{"key":"${b64("a")}"} {"trailing": garbage`);
  await same(t, "/v3/kv/range", "");
  await same(t, "/v3/kv/range", "null");
  await same(t, "/v3/kv/range", `{"key":null}`);
  await same(t, "/v3beta/kv/range", JSON.stringify({ key: b64("a") }));
});

t.test("errors: etcd's codes, statuses and messages", async (t) => {
  await same(t, "/v3/kv/put", JSON.stringify({ value: b64("no key") }));
  await same(t, "/v3/kv/range", JSON.stringify({ key: b64("a"), sort_order: "BOGUS" }));
  await same(t, "/v3/kv/range", `{"key":"${b64("a")}"`);
  await same(t, "/v3/kv/range", JSON.stringify({ key: b64("a") }), { headers: { "Grpc-Timeout": "1n" } });
  await same(t, "/v3/kv/range", JSON.stringify({ key: b64("a") }), { headers: { "Grpc-Timeout": "bogus" } });
  await same(t, "/v3/kv/range", JSON.stringify({ key: b64("a") }), { headers: { "Grpc-Timeout": "5S" } });
  // Decode errors: same status and code; the message is Go's own wording on etcd, protobuf-es's here.
  for (const body of ["[]", `{"key":"${b64("a")}","keys_only":"true"}`, `{"key":"${b64("a")}","limit":1.5}`, `{"key":"${b64("a")}","limit":"x"}`]) {
    await same(t, "/v3/kv/range", body, { fix: (s) => s.replace(/"(error|message)":"(?:[^"\\]|\\.)*"/g, '"$1":"<decode error>"') });
  }
  for (const method of ["GET", "PUT", "DELETE", "PATCH"]) await same(t, "/v3/kv/range", method === "GET" ? undefined : "{}", { method });
  await same(t, "/v3/kv/range", undefined, { method: "HEAD" });
  await same(t, "/v3/kv/range", undefined, { method: "OPTIONS" });
  await same(t, "/v3/kv/nope", undefined, { method: "OPTIONS" });
  await same(t, "/version", undefined, { method: "HEAD" });
  await same(t, "/v3/kv/nope", "{}");
  await same(t, "/v3/kv/range/", "{}");
  await same(t, "/v3alpha/kv/range", "{}");
});

t.test("leases: grant, timetolive, leases, keepalive-free revoke on both path families", async (t) => {
  // IDs above 2^53 sent as JSON numbers must stay exact (python etcd3gw sends them so).
  await same(t, "/v3/lease/grant", `{"TTL":60,"ID":4611686018427387905}`);
  await same(t, "/v3/lease/grant", JSON.stringify({ TTL: 60, ID: "7001" }));
  await same(t, "/v3/kv/put", JSON.stringify({ key: b64("leased"), value: b64("v"), lease: "7001" }));
  const ttl = (s: string) => s.replace(/"TTL":"\d+"/, '"TTL":"<ttl>"');
  await same(t, "/v3/kv/lease/timetolive", JSON.stringify({ ID: 7001, keys: true }), { fix: ttl });
  await same(t, "/v3/lease/timetolive", `{"ID":4611686018427387905}`, { fix: ttl });
  await same(t, "/v3/lease/timetolive", JSON.stringify({ ID: 999 }));
  const sorted = (s: string) => s.replace(/"leases":\[[^\]]*\]/, (m) => m.split("},{").sort().join("},{"));
  await same(t, "/v3/lease/leases", "{}", { fix: sorted });
  await same(t, "/v3/kv/lease/leases", "", { fix: sorted });
  await same(t, "/v3/kv/lease/revoke", JSON.stringify({ ID: 7001 }));
  await same(t, "/v3/lease/revoke", JSON.stringify({ ID: 7001 }));
  await same(t, "/v3/lease/revoke", `{"ID":4611686018427387905}`);
  await same(t, "/v3/kv/range", JSON.stringify({ key: b64("leased") }));
});

t.test("maintenance, election and lock", async (t) => {
  await same(t, "/v3/maintenance/alarm", "{}");
  await same(t, "/v3/maintenance/alarm", JSON.stringify({ action: "GET" }));
  const status = (s: string) => s.replace(/"(dbSize|dbSizeInUse|raftIndex|raftAppliedIndex)":"\d+"/g, '"$1":"<n>"');
  await same(t, "/v3/maintenance/status", "{}", { fix: status });
  await same(t, "/v3/maintenance/hash", "{}", { fix: (s) => s.replace(/"hash":\d+/, '"hash":0') });
  await same(t, "/v3/lease/grant", JSON.stringify({ TTL: 60, ID: 77 }));
  await same(t, "/v3/election/campaign", JSON.stringify({ name: b64("e"), lease: 77, value: b64("v1") }));
  await same(t, "/v3/election/leader", JSON.stringify({ name: b64("e") }));
  await same(t, "/v3/election/leader", JSON.stringify({ name: b64("nobody") }));
  await same(t, "/v3/election/proclaim", JSON.stringify({ leader: { name: b64("e"), key: b64("e/4d"), rev: 0, lease: 77 }, value: b64("v2") }));
  await same(t, "/v3/lock/lock", JSON.stringify({ name: b64("l"), lease: 77 }));
  await same(t, "/v3/lock/unlock", JSON.stringify({ key: b64("l/4d") }));
  await same(t, "/v3/election/resign", "{}");
  await same(t, "/v3/lock/unlock", "{}");
});

t.test("auth: Authorization carries the raw token, Grpc-Metadata-Token too", async (t) => {
  // Names with <, &, > and U+2028 come back in Go's escaped form.
  await same(t, "/v3/auth/user/add", JSON.stringify({ name: "<a&b>\u2028é", password: "x" }));
  await same(t, "/v3/auth/user/list", "{}");
  await same(t, "/v3/auth/user/add", JSON.stringify({ name: "root", password: "rootpw" }));
  await same(t, "/v3/auth/user/grant", JSON.stringify({ user: "root", role: "root" }));
  await same(t, "/v3/auth/role/add", JSON.stringify({ name: "r1" }));
  await same(t, "/v3/auth/role/grant", JSON.stringify({ name: "r1", perm: { key: b64("a"), range_end: b64("b"), permType: "READWRITE" } }));
  await same(t, "/v3/auth/role/get", JSON.stringify({ role: "r1" }));
  await same(t, "/v3/auth/user/get", JSON.stringify({ name: "root" }));
  await same(t, "/v3/auth/enable", "{}");
  await same(t, "/v3/kv/range", JSON.stringify({ key: b64("a") }));
  await same(t, "/v3/auth/authenticate", JSON.stringify({ name: "root", password: "wrong" }));
  await same(t, "/v3/auth/authenticate", JSON.stringify({ name: "root", password: "rootpw" }));
  const token = async (base: string) => JSON.parse((await call(base, "/v3/auth/authenticate", JSON.stringify({ name: "root", password: "rootpw" }))).body).token as string;
  const [tokDirect, tokEdge] = [await token(direct.url), await token(edge.url)];
  const both = async (path: string, body: string, header: (tok: string) => Record<string, string>) => {
    const a = await call(direct.url, path, body, { headers: header(tokDirect) });
    const b = await call(edge.url, path, body, { headers: header(tokEdge) });
    t.equal(b.status, a.status, `status of ${path} with ${JSON.stringify(header("<token>"))}`);
    t.equal(normalize(b.body), normalize(a.body), `body of ${path} with ${JSON.stringify(header("<token>"))}`);
    return b;
  };
  t.equal((await both("/v3/kv/range", JSON.stringify({ key: b64("a") }), (tok) => ({ Authorization: tok }))).status, 200);
  t.equal((await both("/v3/kv/range", JSON.stringify({ key: b64("a") }), (tok) => ({ Authorization: `Bearer ${tok}` }))).status, 401);
  t.equal((await both("/v3/kv/range", JSON.stringify({ key: b64("a") }), (tok) => ({ "Grpc-Metadata-Token": tok }))).status, 200);
  t.equal((await both("/v3/kv/range", JSON.stringify({ key: b64("a") }), () => ({ Authorization: "garbage" }))).status, 401);
  t.equal((await both("/v3/auth/disable", "{}", (tok) => ({ Authorization: tok }))).status, 200);
});

t.test("deliberate differences from etcd's gateway", async (t) => {
  // Lenient base64: unpadded and URL-safe keys are read (protobuf-es follows the proto3 JSON spec); etcd
  // answers 400 "illegal base64 data at input byte 0".
  for (const key of ["YQ", "_-8="]) {
    const a = await call(direct.url, "/v3/kv/range", JSON.stringify({ key }));
    const b = await call(edge.url, "/v3/kv/range", JSON.stringify({ key }));
    t.equal(a.status, 400, `etcd refuses ${key}`);
    t.equal(b.status, 200, `the proxy reads ${key}`);
  }
  t.equal((await call(edge.url, "/v3/kv/range", JSON.stringify({ key: "!!!!" }))).status, 400, "not base64 at all is still refused");
  // FailedPrecondition: the status of the etcd behind us (412 from etcd 3.4, 400 from 3.5), which
  // python etcd3gw needs for its PreconditionFailedError.
  const a = await call(direct.url, "/v3/maintenance/transfer-leadership", JSON.stringify({ targetID: 1 }));
  const b = await call(edge.url, "/v3/maintenance/transfer-leadership", JSON.stringify({ targetID: 1 }));
  t.equal(normalize(b.body), normalize(a.body), "same error body");
  t.equal(b.status, a.status, `the same status as etcd (${a.status})`);
  const roleA = await call(direct.url, "/v3/auth/role/get", JSON.stringify({ role: "no-such-role" }));
  const roleB = await call(edge.url, "/v3/auth/role/get", JSON.stringify({ role: "no-such-role" }));
  t.equal(roleB.status, roleA.status, `role not found: the same status as etcd (${roleA.status})`);
  t.equal(normalize(roleB.body), normalize(roleA.body), "and the same body");
});

t.test("size bounds: ResourceExhausted (429), like etcd's gateway over gRPC's limit", async (t) => {
  // Over 2 x --max-send-bytes of JSON: refused before decoding.
  const huge = JSON.stringify({ key: b64("big"), value: Buffer.alloc(MAX_SEND * 2).toString("base64") });
  const over = await call(edge.url, "/v3/kv/put", huge);
  t.equal(over.status, 429);
  t.match(JSON.parse(over.body), { code: 8, error: /larger than max/ });
  // Within the JSON bound, but the message is over --max-send-bytes: the RPC handler refuses it.
  const big = JSON.stringify({ key: b64("big"), value: Buffer.alloc(MAX_SEND + 1000).toString("base64") });
  const tooBig = await call(edge.url, "/v3/kv/put", big);
  t.equal(tooBig.status, 429);
  t.equal(JSON.parse(tooBig.body).code, 8);
  t.equal((await call(edge.url, "/v3/kv/range", JSON.stringify({ key: b64("big") }))).body.includes('"kvs"'), false, "nothing was written");
  const fits = await call(edge.url, "/v3/kv/put", JSON.stringify({ key: b64("big"), value: Buffer.alloc(MAX_SEND - 1000).toString("base64") }));
  t.equal(fits.status, 200, fits.body);
});

t.test("the same gateway over h2c prior knowledge (etcd serves it over HTTP/1.1 only)", async (t) => {
  const h1 = await call(edge.url, "/v3/kv/range", JSON.stringify({ key: b64("a") }));
  const h2 = await curl(["--http2-prior-knowledge", "-X", "POST", "-d", JSON.stringify({ key: b64("a") }), `${edge.url}/v3/kv/range`]);
  t.equal(h2.code, 0, h2.stderr);
  t.equal(h2.stdout, h1.body);
  const version = await curl(["--http2-prior-knowledge", `${edge.url}/version`]);
  t.equal(version.stdout, (await call(edge.url, "/version", undefined, { method: "GET" })).body);
  const status = await curl(["--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code} %{http_version}", `${edge.url}/v3/kv/range`]);
  t.equal(status.stdout, "405 2");
  const put = await curl(["--http2-prior-knowledge", "-d", JSON.stringify({ key: b64("h2"), value: b64("yes") }), `${edge.url}/v3/kv/put`]);
  t.match(JSON.parse(put.stdout), { header: { revision: /^\d+$/ } });
  const err = await curl(["--http2-prior-knowledge", "-w", " %{http_code}", "-d", "{}", `${edge.url}/v3/kv/range`]);
  t.equal(err.stdout, '{"error":"etcdserver: key is not provided","message":"etcdserver: key is not provided","code":3} 400');
});

t.test("HTTP/1.1 keep-alive: one socket serves call after call, trailing data and an oversized chunked body included", async (t) => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const post = (path: string, body: string | string[]) => new Promise<{ status: number; body: string; reused: boolean }>((resolve, reject) => {
    const chunked = Array.isArray(body);
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (!chunked) headers["content-length"] = String(Buffer.byteLength(body));
    const req = http.request(edge.url + path, { method: "POST", agent, headers }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => { text += d.toString(); });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text, reused: req.reusedSocket }));
    });
    req.on("error", reject);
    for (const part of chunked ? body : [body]) req.write(part);
    req.end();
  });
  const put = await post("/v3/kv/put", JSON.stringify({ key: b64("ka"), value: b64("1") }));
  t.equal(put.status, 200, put.body);
  // grpc-gateway decodes the first JSON value and ignores what follows it.
  const trailing = await post("/v3/kv/range", JSON.stringify({ key: b64("ka") }) + ' {"ignored": true} and not JSON');
  t.equal(trailing.status, 200, trailing.body);
  t.match(JSON.parse(trailing.body), { kvs: [{ value: b64("1") }] });
  t.equal(trailing.reused, true, "on the same socket");
  const again = await post("/v3/kv/range", JSON.stringify({ key: b64("ka") }));
  t.equal(again.reused, true, "and the next call too");
  // Chunked (no content-length) and over 2 x --max-send-bytes: the 429 reaches the client.
  const part = `{"key":"${b64("big")}","value":"${"A".repeat(32 * 1024)}`;
  const over = await post("/v3/kv/put", [part, "A".repeat(64 * 1024), "A".repeat(64 * 1024), '"}']);
  t.equal(over.status, 429, over.body);
  t.equal(JSON.parse(over.body).code, 8);
  const after = await post("/v3/kv/range", JSON.stringify({ key: b64("ka") }));
  t.equal(after.status, 200, "the proxy serves the next call");
});
