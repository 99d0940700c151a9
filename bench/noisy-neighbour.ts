/**
 * The noisy-neighbour measurement (issue 15), standalone until it is a row of bench/run.ts: one client
 * (from 127.0.0.2, so it is its own flow by address) runs NOISY concurrent linearizable Ranges of 10,000
 * keys while another (127.0.0.1) does 100 small linearizable reads a second; the quiet client's p99 with
 * the noise beside its p99 alone, on etcd directly, etcd grpc-proxy and etcd-edge (--fairness and not).
 *
 *   npx tsx bench/noisy-neighbour.ts [seconds per phase, default 5]
 */
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { spawn } from "node:child_process";
import { KV } from "../gen/etcdserverpb/rpc_pb.js";
import { startEtcd } from "../test/helpers/etcd.js";
import { freePort } from "../test/helpers/ports.js";
import { startEdge } from "../test/helpers/proxy.js";

const SECONDS = Number(process.argv[2] ?? 5);
const NOISY = 200;
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
