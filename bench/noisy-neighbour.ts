/**
 * The noisy-neighbour measurement as a standalone diagnostic (the row itself is `noisy-neighbour` in
 * bench/workloads.ts, run by bench/run.ts; this script varies what the row fixes): one client (from
 * 127.0.0.2, its own flow by address) keeps NN_NOISY (default 200) linearizable Ranges of 10,000 keys in
 * flight while another (127.0.0.1) does 100 small linearizable reads a second; the quiet client's p99
 * alone and with the noise, on etcd, etcd grpc-proxy, etcd-edge and etcd-edge --fairness, or only on
 * etcd-edge with the flags in NN_EDGE_ARGS. Clients are connect-node's (src/ runs through tsx).
 *
 *   npx tsx bench/noisy-neighbour.ts [seconds per phase, default 5]
 *   NN_NOISY=1 NN_EDGE_ARGS="" npx tsx bench/noisy-neighbour.ts 4   # one noisy call at a time: the floor
 */
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { spawn } from "node:child_process";
import { KV } from "../gen/etcdserverpb/rpc_pb.js";
import { startEtcd } from "../test/helpers/etcd.js";
import { freePort } from "../test/helpers/ports.js";
import { startEdge } from "../test/helpers/proxy.js";

const SECONDS = Number(process.argv[2] ?? 5);
const NOISY = Number(process.env["NN_NOISY"] ?? 200);
const KEYS = 10_000;
const enc = (s: string) => new TextEncoder().encode(s);
// localAddress reaches net.connect through node:http2 (its session options' type does not list it).
const client = (url: string, localAddress: string) => createClient(KV, createGrpcTransport({ baseUrl: url, nodeOptions: { localAddress } as object }));

function p99(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * 0.99))] ?? NaN;
}

/** 100 small reads a second for SECONDS; their latencies in ms. */
async function quiet(url: string): Promise<number[]> {
  const kv = client(url, "127.0.0.1");
  await kv.range({ key: enc("small") });
  const out: number[] = [];
  const calls: Promise<void>[] = [];
  for (let i = 0; i < SECONDS * 100; i++) {
    const t0 = performance.now();
    calls.push(kv.range({ key: enc("small") }).then(() => { out.push(performance.now() - t0); }, () => { out.push(Infinity); }));
    await new Promise((r) => setTimeout(r, 10));
  }
  await Promise.all(calls);
  return out;
}

async function measure(name: string, url: string): Promise<string> {
  const alone = p99(await quiet(url));
  const noisy = client(url, "127.0.0.2");
  let stop = false;
  let done = 0;
  let refused = 0;
  const loops = Array.from({ length: NOISY }, async () => {
    while (!stop) {
      await noisy.range({ key: enc("nn/"), rangeEnd: enc("nn0") }).then(() => { done++; }, () => { refused++; });
    }
  });
  await new Promise((r) => setTimeout(r, 1000));
  const withNoise = p99(await quiet(url));
  stop = true;
  await Promise.all(loops);
  return `| ${name} | ${alone.toFixed(2)} | ${withNoise.toFixed(2)} | ${(withNoise / alone).toFixed(1)}x | ${done} | ${refused} |`;
}

const etcd = await startEtcd(undefined);
const kv = client(etcd.url, "127.0.0.1");
await kv.put({ key: enc("small"), value: enc("v") });
for (let i = 0; i < KEYS; i += 500) {
  await Promise.all(Array.from({ length: 500 }, (_, k) => kv.put({ key: enc(`nn/${String(i + k).padStart(5, "0")}`), value: enc("x".repeat(32)) })));
}
const rows = ["| target | quiet p99 alone (ms) | quiet p99 with noise (ms) | ratio | noisy ranges done | noisy refused |", "|---|---|---|---|---|---|"];
const only = process.env["NN_EDGE_ARGS"];
if (only !== undefined) {
  const edge = await startEdge(undefined, [`--endpoints=${etcd.endpoint}`, ...only.split(" ").filter(Boolean)]);
  rows.push(await measure(`etcd-edge ${only}`, edge.url));
  await edge.stop();
  await etcd.stop();
  console.log(rows.join("\n"));
  process.exit(0);
}
rows.push(await measure("etcd", etcd.url));
const port = await freePort();
const proxy = spawn("etcd", ["grpc-proxy", "start", `--endpoints=${etcd.endpoint}`, `--listen-addr=127.0.0.1:${port}`, `--data-dir=/tmp/nn-grpc-proxy-${port}`], { stdio: "ignore" });
await new Promise((r) => setTimeout(r, 1500));
rows.push(await measure("etcd grpc-proxy", `http://127.0.0.1:${port}`));
proxy.kill("SIGKILL");
const edgeOff = await startEdge(undefined, [`--endpoints=${etcd.endpoint}`]);
rows.push(await measure("etcd-edge", edgeOff.url));
await edgeOff.stop();
const edgeOn = await startEdge(undefined, [`--endpoints=${etcd.endpoint}`, "--fairness"]);
rows.push(await measure("etcd-edge --fairness", edgeOn.url));
await edgeOn.stop();
await etcd.stop();
console.log(rows.join("\n"));
process.exit(0);
