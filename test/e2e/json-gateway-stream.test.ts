/**
 * The streaming paths of etcd's JSON gateway (watch, lease keep-alive, snapshot, election observe)
 * through the proxy, differential against etcd's own gateway: two fresh etcds driven in lockstep, lines
 * compared as text. Then what only the proxy does: the same streams over h2c, and its own bounds.
 */
import { createHash } from "node:crypto";
import t from "tap";
import { startEtcd } from "../helpers/etcd.js";
import { call, curl, duplex, normalize, openStream, rawChunks } from "../helpers/gateway.js";
import { waitFor } from "../helpers/ports.js";
import { startEdge } from "../helpers/proxy.js";
import { etcdWatchers, settledEtcdWatchers } from "../helpers/watch-session.js";

const direct = await startEtcd(t);
const behind = await startEtcd(t);
const MAX_SEND = 65536;
const edge = await startEdge(t, [`--endpoints=${behind.endpoint}`, `--max-send-bytes=${MAX_SEND}`]);
const sides = [["etcd", direct.url], ["proxy", edge.url]] as const;

const b64 = (s: string) => Buffer.from(s).toString("base64");

/** A unary call to both, checked equal: the writes that keep the two clusters in lockstep. */
async function both(path: string, body: string): Promise<void> {
  const a = await call(direct.url, path, body);
  const b = await call(edge.url, path, body);
  t.equal(normalize(b.body), normalize(a.body), `lockstep ${path} ${body}`);
}

t.test("watch with fetch: created, progress, events and the compacted cancel, line by line", async (t) => {
  await both("/v3/kv/put", JSON.stringify({ key: b64("w/a"), value: b64("0") }));
  const body = [
    { create_request: { key: b64("w/"), range_end: b64("w0"), prev_kv: true } },
    { progress_request: {} },
    { create_request: { key: b64("other"), watch_id: 7, filters: ["NODELETE"] } },
  ].map((o) => JSON.stringify(o)).join("");
  const streams = await Promise.all(sides.map(([, base]) => openStream(base, "/v3/watch", body)));
  t.teardown(() => streams.forEach((s) => s.abort()));
  const lines = async (what: string, n = 1) => {
    const got: string[][] = [];
    for (const s of streams) {
      const mine: string[] = [];
      for (let i = 0; i < n; i++) mine.push(normalize(await s.lines.next(what)));
      got.push(mine);
    }
    t.same(got[1], got[0], what);
    return got[1]!;
  };
  t.same(streams.map((s) => s.status), [200, 200]);
  const [created, progress, created7] = await lines("created, progress, created 7", 3);
  t.match(JSON.parse(created!), { result: { created: true, header: { revision: "2" } } });
  t.match(JSON.parse(progress!), { result: { watch_id: "-1" } });
  t.match(JSON.parse(created7!), { result: { watch_id: "7", created: true } });
  await both("/v3/kv/put", JSON.stringify({ key: b64("w/a"), value: b64("<&>") }));
  await lines("a put event with prev_kv");
  await both("/v3/kv/deleterange", JSON.stringify({ key: b64("w/a") }));
  const [del] = await lines("a delete event");
  t.match(JSON.parse(del!), { result: { events: [{ type: "DELETE", kv: { key: b64("w/a") } }] } });
  await both("/v3/kv/put", JSON.stringify({ key: b64("other"), value: b64("1") }));
  await lines("the put on 'other'");
  await both("/v3/kv/compaction", JSON.stringify({ revision: 4 }));
  const late = await Promise.all(sides.map(([, base]) => openStream(base, "/v3/watch", JSON.stringify({ create_request: { key: b64("w/a"), start_revision: 2 } }))));
  t.teardown(() => late.forEach((s) => s.abort()));
  const texts = [];
  for (const s of late) texts.push([normalize(await s.lines.next("created")), normalize(await s.lines.next("compacted cancel"))]);
  t.same(texts[1], texts[0], "a watch from a compacted revision is cancelled as etcd cancels it");
  t.match(JSON.parse(texts[1]![1]!), { result: { canceled: true, compact_revision: "4" } });
});

t.test("each message is one HTTP/1.1 chunk ending in a newline (python etcd3gw reads chunk by chunk)", async (t) => {
  const body = JSON.stringify({ create_request: { key: b64("chunks") } }) + JSON.stringify({ progress_request: {} });
  const answers = [];
  for (const hostPort of [direct.endpoint, edge.addr]) answers.push(await rawChunks(hostPort, "/v3/watch", body, 2));
  for (const a of answers) {
    t.match(a.head, /transfer-encoding: chunked/i);
    for (const c of a.chunks) t.match(c, /^\{"result":\{.*\}\}\n$/, "one whole line per chunk");
  }
  t.same(answers[1]!.chunks.map(normalize), answers[0]!.chunks.map(normalize));
});

t.test("keep-alive: one line per request object, then the answer ends", async (t) => {
  await both("/v3/lease/grant", JSON.stringify({ TTL: 30, ID: 4242 }));
  const body = `{"ID":4242}\n{"ID":"4242"} {"ID":999}`;
  const answers = await Promise.all(sides.map(([, base]) => call(base, "/v3/lease/keepalive", body)));
  t.equal(answers[1]!.status, answers[0]!.status);
  t.equal(normalize(answers[1]!.body), normalize(answers[0]!.body));
  t.equal(answers[1]!.body.trim().split("\n").length, 3);
  t.match(answers[1]!.body, /"ID":"999"\}\}\n$/, "an unknown lease has no TTL");
  const empty = await Promise.all(sides.map(([, base]) => call(base, "/v3/lease/keepalive", "")));
  t.same(empty.map((a) => [a.status, a.body]), [[200, ""], [200, ""]], "an empty body ends at once");
});

t.test("snapshot streams blobs and ends with the checksum", async (t) => {
  for (const [name, base] of sides) {
    const res = await call(base, "/v3/maintenance/snapshot", "{}");
    t.equal(res.status, 200, name);
    const lines = res.body.trimEnd().split("\n").map((l) => JSON.parse(l));
    t.ok(lines.length >= 2, `${name}: data and checksum`);
    for (const l of lines.slice(0, -1)) t.match(l, { result: { blob: /^[A-Za-z0-9+/]+=*$/ } });
    t.same(Object.keys(lines.at(-1).result), ["blob"], `${name}: the last line has only the blob`);
    const db = Buffer.concat(lines.slice(0, -1).map((l) => Buffer.from(l.result.blob, "base64")));
    t.equal(db.length % 4096, 0, `${name}: whole bbolt pages`);
    t.equal(lines.at(-1).result.blob, createHash("sha256").update(db).digest("base64"), `${name}: the last blob is the sha256 of the rest`);
  }
});

t.test("election observe streams the leader", async (t) => {
  await both("/v3/lease/grant", JSON.stringify({ TTL: 60, ID: 88 }));
  await both("/v3/election/campaign", JSON.stringify({ name: b64("obs"), lease: 88, value: b64("first") }));
  const streams = await Promise.all(sides.map(([, base]) => openStream(base, "/v3/election/observe", JSON.stringify({ name: b64("obs") }))));
  t.teardown(() => streams.forEach((s) => s.abort()));
  const firsts = [];
  for (const s of streams) firsts.push(normalize(await s.lines.next("the leader")));
  t.equal(firsts[1], firsts[0]);
  t.match(JSON.parse(firsts[1]!), { result: { kv: { value: b64("first"), lease: "88" } } });
  await both("/v3/election/proclaim", JSON.stringify({ leader: { name: b64("obs"), key: b64("obs/58"), rev: JSON.parse(firsts[1]!).result.kv.create_revision, lease: 88 }, value: b64("second") }));
  const seconds = [];
  for (const s of streams) seconds.push(normalize(await s.lines.next("the proclaimed value")));
  t.equal(seconds[1], seconds[0]);
});

t.test("errors before and after the first message", async (t) => {
  // Before: the unary error body. etcd's gateway says 500/code 2 for an undecodable first object; the
  // proxy treats it as any decode error: 400/code 3.
  const bad = JSON.stringify({ create_request: { key: b64("x"), filters: ["BOGUS"] } });
  const a = await call(direct.url, "/v3/watch", bad);
  const b = await call(edge.url, "/v3/watch", bad);
  t.equal(a.status, 500);
  t.same([b.status, JSON.parse(b.body)], [400, { error: 'unknown value "BOGUS" for enum etcdserverpb.WatchCreateRequest_FilterType', message: 'unknown value "BOGUS" for enum etcdserverpb.WatchCreateRequest_FilterType', code: 3 }]);
  // A streamed object over the JSON bound (2 x --max-send-bytes): ResourceExhausted.
  const huge = JSON.stringify({ create_request: { key: b64("x".repeat(MAX_SEND * 2)) } });
  const over = await call(edge.url, "/v3/watch", huge);
  t.equal(over.status, 429);
  t.equal(JSON.parse(over.body).code, 8);
});

/** protobuf-es's words for a watch_id that is not a number. */
function cannotDecode(value: string): string {
  return `cannot decode field etcdserverpb.WatchCancelRequest.watch_id from JSON: expected bigint (int64): ${value} out of range`;
}

t.test("watch with a request body that stays open, over HTTP/1.1 and h2c: requests act as they arrive", async (t) => {
  // The proxy only: etcd's gateway (Go's HTTP/1.1 server) answers nothing until the request body has ended.
  for (const version of ["1.1", "2"] as const) {
    const key = b64(`open-${version}`);
    const s = duplex(edge.url, "/v3/watch", version);
    t.teardown(() => s.close());
    const step = async (what: string, send?: unknown) => {
      if (send !== undefined) s.send(send);
      return JSON.parse(await s.lines.next(`${what} over ${version}`));
    };
    t.match(await step("created", { create_request: { key } }), { result: { created: true } });
    t.equal(await s.status, 200);
    t.match(await step("created 5", { create_request: { key: b64("e"), watch_id: 5 } }), { result: { watch_id: "5", created: true } });
    t.match(await step("canceled 5", { cancel_request: { watch_id: 5 } }), { result: { watch_id: "5", canceled: true } });
    t.match(await step("progress", { progress_request: {} }), { result: { watch_id: "-1" } });
    s.end();
    await call(edge.url, "/v3/kv/put", JSON.stringify({ key, value: b64("after half-close") }));
    t.match(await step("an event after the half-close"), { result: { events: [{ kv: { value: b64("after half-close") } }] } });
    // A bad object mid-stream: an error line ends the stream (etcd's gateway would silently stop reading).
    const bad = duplex(edge.url, "/v3/watch", version);
    t.teardown(() => bad.close());
    bad.send({ create_request: { key } });
    t.match(JSON.parse(await bad.lines.next("created")), { result: { created: true } });
    bad.send({ cancel_request: { watch_id: "x" } });
    t.same(JSON.parse(await bad.lines.rest()), { error: { grpc_code: 3, http_code: 400, message: cannotDecode("x"), http_status: "Bad Request" } });
  }
});

t.test("over h2c with curl: keep-alive, and a watch that stays open (curl -N)", async (t) => {
  const ka = await curl(["--http2-prior-knowledge", "-d", '{"ID":4242}{"ID":4242}', `${edge.url}/v3/lease/keepalive`]);
  t.equal(ka.stdout.trim().split("\n").length, 2, ka.stdout);
  const watch = await curl(["--http2-prior-knowledge", "-N", "--max-time", "2", "-d", JSON.stringify({ create_request: { key: b64("h2") } }), `${edge.url}/v3/watch`]);
  t.equal(watch.code, 28, "curl's timeout ended it: the watch stayed open");
  t.match(JSON.parse(watch.stdout.split("\n")[0]!), { result: { created: true } });
});

t.test("a client that goes away cancels etcd's watch", async (t) => {
  const before = await settledEtcdWatchers(behind.url);
  const s = await openStream(edge.url, "/v3/watch", JSON.stringify({ create_request: { key: b64("gone"), range_end: b64("gonf") } }));
  await s.lines.next("created");
  t.equal(await etcdWatchers(behind.url), before + 1, "the watch reached etcd");
  s.abort();
  await waitFor("etcd to drop the watch", async () => (await etcdWatchers(behind.url)) === before);
  t.pass("etcd dropped it");
});
