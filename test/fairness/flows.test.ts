/**
 * --fairness names flows from what the proxy sees of a caller, through the real listener: under mTLS the
 * client certificate's subject (two certificates from one address are two flows), else the address (two
 * loopback addresses are two flows). Each caller holds a seat with a Lock call waiting on a held lock,
 * and /metrics (on --metrics-addr, plain HTTP) shows one seat in use per flow. The etcd user of a token
 * is covered by test/unit/fairness.test.ts (etcd refuses tokens while its auth is off).
 */
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { readFileSync } from "node:fs";
import t from "tap";
import { Lease } from "../../gen/etcdserverpb/rpc_pb.js";
import { Lock } from "../../gen/v3lockpb/v3lock_pb.js";
import { makeCerts, extraLeaf, type Pair } from "../helpers/certs.js";
import { clientFor, enc } from "../helpers/clients.js";
import { startEtcd } from "../helpers/etcd.js";
import { freePort } from "../helpers/ports.js";
import { startEdge } from "../helpers/proxy.js";

const etcd = await startEtcd(t);
const certs = makeCerts(t);

/** Holds lock `name` with a lease through etcd directly, so that every Lock call on the proxy waits. */
async function holdLock(name: string): Promise<void> {
  const lease = await clientFor(Lease, "grpc", etcd.url).leaseGrant({ TTL: 60n });
  await clientFor(Lock, "grpc", etcd.url).lock({ name: enc(name), lease: lease.ID });
}

/** /metrics lines of the per-flow seats gauge, as flow → value. */
async function seatsByFlow(metricsUrl: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^etcd_edge_fairness_flow_seats_in_use\{flow="([^"]*)"\} (\d+)$/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

/** Until /metrics shows `want` (flows with one seat each), or fails after about 10 s. */
async function untilFlows(t: { equal(a: unknown, b: unknown, msg: string): unknown }, metricsUrl: string, want: string[]): Promise<void> {
  let seen: Record<string, number> = {};
  for (let i = 0; i < 200; i++) {
    seen = await seatsByFlow(metricsUrl);
    if (want.every((f) => seen[f] === 1)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  for (const f of want) t.equal(seen[f], 1, `flow ${f} holds its seat`);
}

t.test("two addresses, two flows", async (t) => {
  const metricsPort = await freePort();
  const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`, "--fairness", `--metrics-addr=http://127.0.0.1:${metricsPort}`]);
  await holdLock("by-address");
  const abort = new AbortController();
  t.teardown(() => abort.abort());
  for (const localAddress of ["127.0.0.1", "127.0.0.2"]) {
    // localAddress reaches net.connect through node:http2 (its session options' type does not list it).
    const lock = createClient(Lock, createGrpcTransport({ baseUrl: edge.url, nodeOptions: { localAddress } as object }));
    void lock.lock({ name: enc("by-address") }, { signal: abort.signal }).catch(() => undefined);
  }
  await untilFlows(t, `http://127.0.0.1:${metricsPort}`, ["addr:127.0.0.1", "addr:127.0.0.2"]);
});

t.test("two client certificates from one address, two flows", async (t) => {
  const metricsPort = await freePort();
  const edge = await startEdge(t, [
    `--endpoints=${etcd.endpoint}`, "--fairness", `--metrics-addr=http://127.0.0.1:${metricsPort}`,
    `--cert-file=${certs.server.cert}`, `--key-file=${certs.server.key}`, `--trusted-ca-file=${certs.ca}`,
  ], { tls: true });
  await holdLock("by-certificate");
  const abort = new AbortController();
  t.teardown(() => abort.abort());
  const alice = extraLeaf(certs, "alice", "/CN=alice", "clientAuth");
  const bob = extraLeaf(certs, "bob", "/CN=bob", "clientAuth");
  const as = (p: Pair) => ({ ca: readFileSync(certs.ca), cert: readFileSync(p.cert), key: readFileSync(p.key) });
  for (const who of [alice, bob]) {
    void clientFor(Lock, "grpc", edge.url, "2", as(who)).lock({ name: enc("by-certificate") }, { signal: abort.signal }).catch(() => undefined);
  }
  await untilFlows(t, `http://127.0.0.1:${metricsPort}`, ["cert:alice", "cert:bob"]);
});
