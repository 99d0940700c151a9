/**
 * The core checks with the proxy running under Node 24, Deno and Bun (the `node`, `deno` and `bun` npm
 * packages, dev dependencies), from the compiled bin as `npm start` and `npm run start:deno|start:bun`
 * run it: etcdctl put/get/watch, a connect client in every
 * protocol (unary over HTTP/2 and HTTP/1.1, Watch over HTTP/2), curl /health over h2c and over one
 * HTTP/1.1 keep-alive connection (Deno's gap, runtime/deno.ts), a Connect JSON Range with curl, and what
 * a browser uses (Edge/Watch as a server stream over HTTP/1.1, CORS headers).
 * Needs dist/ (npm test builds it first; alone: `npm run build && npx tap test/runtime/runtimes.test.ts`).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import t from "tap";
import { Edge } from "../../gen/etcdedge/v1/edge_pb.js";
import { KV, Watch, WatchRequestSchema, type WatchRequest } from "../../gen/etcdserverpb/rpc_pb.js";
import { clientFor, dec, enc, PROTOCOLS } from "../helpers/clients.js";
import { startEtcd } from "../helpers/etcd.js";
import { etcdctl } from "../helpers/etcdctl.js";
import { waitFor } from "../helpers/ports.js";
import { startEdge } from "../helpers/proxy.js";
import { AsyncQueue, nextWithin } from "../helpers/streams.js";

/** EDGE_RUNTIME values (test/helpers/proxy.ts), and the name each says it runs on in its start line. */
const RUNTIMES = [["node-npm", "node"], ["deno", "deno"], ["bun", "bun"]] as const;
/** The major version of Node the `node` package must give: the current LTS (package.json devDependencies). */
const NODE_MAJOR = 24;
const APP_ORIGIN = "http://app.example:8080";

const etcd = await startEtcd(t);

/** curl with the given arguments: exit code and stdout (stderr appended on failure, for the message). */
function curl(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const proc = spawn("curl", ["-sS", "--max-time", "10", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    proc.stdout.on("data", (d: Buffer) => { out += d.toString(); });
    proc.stderr.on("data", (d: Buffer) => { err += d.toString(); });
    proc.on("exit", (code) => resolve({ code, out: code === 0 ? out : `${out}\n[stderr] ${err}` }));
  });
}

/** A long-running `etcdctl watch`: its output so far; killed when the test ends. */
function watchWithEtcdctl(t: { teardown(fn: () => unknown): void }, endpoint: string, args: string[]): () => string {
  const proc: ChildProcess = spawn("etcdctl", [`--endpoints=${endpoint}`, "watch", ...args], { env: { ...process.env, ETCDCTL_API: "3" }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout!.on("data", (d: Buffer) => { out += d.toString(); });
  proc.stderr!.on("data", (d: Buffer) => { out += d.toString(); });
  t.teardown(() => { proc.kill("SIGKILL"); });
  return () => out;
}

for (const [rt, name] of RUNTIMES) {
  t.test(`under ${rt}`, async (t) => {
    if (rt === "node-npm") {
      const version = execFileSync(fileURLToPath(new URL("../../node_modules/.bin/node", import.meta.url)), ["--version"], { encoding: "utf8" }).trim();
      t.match(version, new RegExp(`^v${NODE_MAJOR}\\.`), `the node package is Node ${NODE_MAJOR} (${version})`);
    }
    // startEdge reads EDGE_RUNTIME when it spawns; set per runtime, restored for whatever runs next.
    const before = process.env["EDGE_RUNTIME"];
    process.env["EDGE_RUNTIME"] = rt;
    const dataDir = mkdtempSync(join(tmpdir(), `etcd-edge-${rt}-`));
    t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
    let tlsEdge: Awaited<ReturnType<typeof startEdge>> | undefined;
    const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`, `--cors-allowed-origins=${APP_ORIGIN}`]).then(async (e) => {
      tlsEdge = await startEdge(t, [`--endpoints=${etcd.endpoint}`, "--auto-tls", `--data-dir=${dataDir}`], { tls: true });
      return e;
    }).finally(() => {
      if (before === undefined) delete process.env["EDGE_RUNTIME"];
      else process.env["EDGE_RUNTIME"] = before;
    });
    t.match(edge.output(), new RegExp(`\\(${name}\\) listening on`), `the proxy says it runs on ${name}`);
    const p = `rt/${rt}/`;

    t.test("etcdctl put, get and watch", async (t) => {
      const put = await etcdctl(edge.addr, ["put", `${p}k`, "v1"]);
      t.equal(put.stdout.trim(), "OK", put.stderr);
      const get = await etcdctl(edge.addr, ["get", `${p}k`, "--print-value-only"]);
      t.equal(get.stdout.trim(), "v1", get.stderr);
      const rev = JSON.parse((await etcdctl(edge.addr, ["get", `${p}k`, "-w", "json"])).stdout).header.revision as number;
      // --rev replays the first put, which proves the watch is registered; the second put arrives live.
      const out = watchWithEtcdctl(t, edge.addr, [`--rev=${rev}`, `${p}k`]);
      await waitFor("the replayed put in etcdctl watch", () => out().includes("v1"));
      await etcdctl(etcd.endpoint, ["put", `${p}k`, "v2-live"]);
      await waitFor(`the live put in etcdctl watch (output: ${out()})`, () => out().includes("v2-live"));
      t.match(out(), /PUT\n.*k\nv1\nPUT\n.*k\nv2-live/, "both events, in order");
    });

    t.test("etcdctl lease grant, keep-alive --once, timetolive", async (t) => {
      const grant = await etcdctl(edge.addr, ["lease", "grant", "30"]);
      const id = /lease ([0-9a-f]+) granted/.exec(grant.stdout)?.[1];
      t.ok(id, `granted (${grant.stdout}${grant.stderr})`);
      const ka = await etcdctl(edge.addr, ["lease", "keep-alive", "--once", id!]);
      t.match(ka.stdout, new RegExp(`lease ${id} keepalived with TTL\\(\\d+\\)`), ka.stderr);
      const ttl = await etcdctl(edge.addr, ["lease", "timetolive", id!]);
      t.match(ttl.stdout, /remaining\(\d+s\)/, ttl.stderr);
      await etcdctl(edge.addr, ["lease", "revoke", id!]);
    });

    for (const protocol of PROTOCOLS) {
      const versions = protocol === "grpc" ? (["2"] as const) : (["2", "1.1"] as const);
      for (const httpVersion of versions) {
        t.test(`${protocol} over HTTP/${httpVersion}: Put and Range`, async (t) => {
          const kv = clientFor(KV, protocol, edge.url, httpVersion);
          const key = enc(`${p}${protocol}-${httpVersion}`);
          const put = await kv.put({ key, value: enc("via " + protocol) });
          t.ok(put.header!.revision > 0n, "Put answered with a revision");
          const range = await kv.range({ key });
          t.equal(range.kvs.length, 1);
          t.equal(dec(range.kvs[0]!.value), "via " + protocol);
          t.equal(range.header!.revision, put.header!.revision, "Range sees the Put's revision");
        });
      }
      t.test(`${protocol} over HTTP/2: Watch`, async (t) => {
        const watch = clientFor(Watch, protocol, edge.url, "2");
        const key = `${p}w-${protocol}`;
        const abort = new AbortController();
        t.teardown(() => abort.abort());
        const requests = new AsyncQueue<WatchRequest>();
        const responses = watch.watch(requests, { signal: abort.signal })[Symbol.asyncIterator]();
        requests.push(create(WatchRequestSchema, { requestUnion: { case: "createRequest", value: { key: enc(key) } } }));
        const created = await nextWithin(responses, "the created response");
        t.equal(created.created, true, "created");
        await etcdctl(etcd.endpoint, ["put", key, "seen"]);
        const got = await nextWithin(responses, "the event");
        t.equal(got.events.length, 1);
        t.equal(dec(got.events[0]!.kv!.value), "seen", "the put arrives through the proxy");
      });
    }

    t.test("curl /health over h2c and over one HTTP/1.1 keep-alive connection", async (t) => {
      const h2 = await curl(["--http2-prior-knowledge", "-w", "\n%{http_version}", `${edge.url}/health`]);
      t.equal(h2.code, 0, h2.out);
      t.match(h2.out.split("\n"), [/^\{"health":"true","reason":""[,}]/, "2"], "healthy, over HTTP/2");
      // Two URLs on one command line share a connection; %{num_connects} is 0 for the second transfer only
      // if the proxy kept the first connection open (Deno without the splice closes it).
      const h1 = await curl(["--http1.1", "-w", "\n%{http_version} %{num_connects}\n", `${edge.url}/health`, `${edge.url}/health`]);
      t.equal(h1.code, 0, h1.out);
      t.match(h1.out.trim().split("\n"), [/^\{"health":"true","reason":""[,}]/, "1.1 1", /^\{"health":"true","reason":""[,}]/, "1.1 0"], "both answered over HTTP/1.1, the second on the same connection");
    });

    t.test("TLS (--auto-tls): ALPN h2 and http/1.1, keep-alive, etcdctl", async (t) => {
      const url = tlsEdge!.url;
      const h2 = await curl(["-k", "--http2", "-w", "\n%{http_version}", `${url}/health`]);
      t.match(h2.out.split("\n"), [/^\{"health":"true","reason":""[,}]/, "2"], h2.out);
      const h1 = await curl(["-k", "--http1.1", "-w", "\n%{http_version} %{num_connects}\n", `${url}/health`, `${url}/health`]);
      t.match(h1.out.trim().split("\n"), [/^\{"health":"true","reason":""[,}]/, "1.1 1", /^\{"health":"true","reason":""[,}]/, "1.1 0"], "HTTP/1.1 over TLS keeps the connection");
      const get = await etcdctl(tlsEdge!.addr, ["--insecure-transport=false", "--insecure-skip-tls-verify", "get", `${p}k`, "--print-value-only"]);
      t.equal(get.stdout.trim(), "v2-live", get.stderr);
    });

    t.test("what a browser uses: Edge/Watch over Connect on HTTP/1.1, and CORS", async (t) => {
      const client = clientFor(Edge, "connect-json", edge.url, "1.1");
      const key = `${p}browser`;
      const abort = new AbortController();
      t.teardown(() => abort.abort());
      const stream = client.watch({ key: enc(key) }, { signal: abort.signal })[Symbol.asyncIterator]();
      t.equal((await nextWithin(stream, "the created response")).created, true, "created");
      await etcdctl(etcd.endpoint, ["put", key, "live"]);
      t.equal(dec((await nextWithin(stream, "the event")).events[0]!.kv!.value), "live", "the event arrives over the HTTP/1.1 server stream");
      const pre = await fetch(`${edge.url}/etcdserverpb.KV/Range`, { method: "OPTIONS", headers: { origin: APP_ORIGIN, "access-control-request-method": "POST", "access-control-request-headers": "content-type" } });
      t.equal(pre.status, 204, "preflight answered");
      t.equal(pre.headers.get("access-control-allow-origin"), APP_ORIGIN);
      const res = await fetch(`${edge.url}/etcdserverpb.KV/Range`, { method: "POST", headers: { origin: APP_ORIGIN, "content-type": "application/json" }, body: JSON.stringify({ key: Buffer.from(key).toString("base64") }) });
      t.equal(res.status, 200);
      t.equal(res.headers.get("access-control-allow-origin"), APP_ORIGIN, "the CORS headers survive the runtime's response writing");
      t.match(res.headers.get("access-control-expose-headers"), /Grpc-Status/);
    });

    t.test("curl: Connect JSON Range", async (t) => {
      await etcdctl(etcd.endpoint, ["put", `${p}json`, "bar"]);
      for (const v of ["--http1.1", "--http2-prior-knowledge"]) {
        const r = await curl([v, "-H", "content-type: application/json", "-d", JSON.stringify({ key: Buffer.from(`${p}json`).toString("base64") }), `${edge.url}/etcdserverpb.KV/Range`]);
        t.equal(r.code, 0, r.out);
        const body = JSON.parse(r.out) as { kvs: { key: string; value: string }[]; count: string };
        t.equal(body.count, "1", `${v}: one key`);
        t.equal(Buffer.from(body.kvs[0]!.value, "base64").toString(), "bar", `${v}: its value`);
      }
    });
  });
}
