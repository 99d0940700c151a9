/**
 * Robustness under faults: a randomized concurrent workload through the proxy over gRPC, gRPC-Web, Connect
 * (binary and JSON) and the JSON gateway, plus clients writing directly on etcd, with prefix watches and
 * kept-alive leases through the proxy, while etcd is SIGKILLed and restarted, SIGSTOPped and resumed, a
 * 3-member cluster loses its leader, or the network to the member in use is cut (reset, or stalled).
 * Afterwards:
 * - the history of KV operations (puts, deletes, single-key Txns as compare-and-set, linearizable reads,
 *   by every client) is linearizable (test/helpers/linearizability.ts); a call that failed counts as a
 *   write of unknown outcome, a failed read is left out;
 * - a serializable read through the proxy (the range cache) never returns a value older than its
 *   client's own latest acknowledged write to that key before the read began;
 * - every watch through the proxy saw every revision of its prefix from its start revision exactly once,
 *   in order, as etcd's own history (a watch directly on etcd from revision 1) has them;
 * - every acknowledged put is in etcd's history at its revision, and no value was applied twice;
 * - the leases kept alive through the proxy are alive on etcd;
 * - after each fault, writes through the proxy are acknowledged again (recovery time reported).
 *
 * ROBUSTNESS_SEED replays a workload's choices (not its timings); ROBUSTNESS_SECONDS sets the workload's
 * length per scenario (the long form, bench/robustness.ts, runs 120 s each and injects a fault every few
 * seconds); ROBUSTNESS_REPORT names a file that gets one JSON line of figures per scenario.
 */
import { appendFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { create } from "@bufbuild/protobuf";
import t, { type Test } from "tap";
import { KV, Lease, LeaseKeepAliveRequestSchema, Maintenance, type LeaseKeepAliveRequest } from "../../gen/etcdserverpb/rpc_pb.js";
import { clientFor, enc, type ProtocolName } from "../helpers/clients.js";
import { startCluster, type ClusterMember } from "../helpers/etcd.js";
import { checkHistory, describe } from "../helpers/linearizability.js";
import { sleep, waitFor } from "../helpers/ports.js";
import { startEdge } from "../helpers/proxy.js";
import { AsyncQueue } from "../helpers/streams.js";
import { connectDoor, gatewayDoor, watchPrefix, type DoorName, type PrefixWatch, type WatchEvent } from "./doors.js";
import { startNetFault, type NetFault } from "./net-fault.js";
import { newRecords, rng, runClient, type Client } from "./workload.js";

const SEED = Number(process.env["ROBUSTNESS_SEED"] ?? Math.floor(Math.random() * 2 ** 31));
const SECONDS = Number(process.env["ROBUSTNESS_SECONDS"] ?? 7);
const REPORT = process.env["ROBUSTNESS_REPORT"];
const DOORS: DoorName[] = ["grpc", "grpc-web", "connect-binary", "connect-json", "gateway"];
const PROXY_CLIENTS = 8;
const DIRECT_CLIENTS = 2;
const KEYS = 8;
t.comment(`seed ${SEED} (ROBUSTNESS_SEED=${SEED} replays its choices), ${SECONDS} s of workload per scenario`);

/**
 * One fault: injected, held, healed. Recovery is measured `from` the heal for a single etcd, from the
 * injection on a cluster (the proxy should move to another member meanwhile).
 */
interface Fault { kind: string; at: number; from: number }

interface Setup {
  edgeUrl: string;
  /** Where the direct clients write, and where the truth is read at the end (a member never faulted). */
  directUrl: string;
  truthUrl: string;
  /** Injects one fault (or a few in a row), holds it and heals it. */
  inject(n: number): Promise<Fault[]>;
}

/** Makes the first member the leader (the hardest case: the proxy uses it, and its death stops writes). */
async function leaderFirst(members: ClusterMember[]): Promise<void> {
  const first = members[0]!;
  await waitFor("a leader", async () => (await clientFor(Maintenance, "grpc", first.url).status({}, { timeoutMs: 1000 })).leader !== 0n, 30_000);
  const s0 = await clientFor(Maintenance, "grpc", first.url).status({});
  if (s0.leader === s0.header!.memberId) return;
  for (const m of members) {
    const s = await clientFor(Maintenance, "grpc", m.url).status({});
    if (s.header!.memberId === s0.leader) await clientFor(Maintenance, "grpc", m.url).moveLeader({ targetID: s0.header!.memberId });
  }
}

async function leaderOf(members: ClusterMember[]): Promise<ClusterMember> {
  for (;;) {
    for (const m of members) {
      try {
        const s = await clientFor(Maintenance, "grpc", m.url).status({}, { timeoutMs: 500 });
        if (s.leader !== 0n && s.leader === s.header!.memberId) return m;
      } catch { /* down or paused */ }
    }
    await sleep(100);
  }
}

/** A lease granted through the proxy and kept alive every second through it (a client re-opens a broken stream). */
function keepAlive(protocol: ProtocolName, url: string, ID: bigint): { stop(): void; reopened: () => number; answered: () => number } {
  let running = true;
  let reopened = -1;
  let answered = 0;
  let requests: AsyncQueue<LeaseKeepAliveRequest> | undefined;
  const abort = new AbortController();
  void (async () => {
    while (running) {
      reopened++;
      requests = new AsyncQueue<LeaseKeepAliveRequest>();
      requests.push(create(LeaseKeepAliveRequestSchema, { ID }));
      try {
        for await (const r of clientFor(Lease, protocol, url).leaseKeepAlive(requests, { signal: abort.signal })) if (r.TTL > 0n) answered++;
      } catch { /* re-open */ }
      await sleep(200);
    }
  })();
  const timer = setInterval(() => requests?.push(create(LeaseKeepAliveRequestSchema, { ID })), 1000);
  return { stop: () => { running = false; clearInterval(timer); requests?.end(); abort.abort(); }, reopened: () => Math.max(0, reopened), answered: () => answered };
}

function sameEvent(a: WatchEvent, b: WatchEvent): boolean {
  return a.revision === b.revision && a.key === b.key && a.type === b.type && (a.type === "DELETE" || a.value === b.value);
}

async function scenario(t: Test, name: string, setup: Setup): Promise<void> {
  const seed = (SEED + name.length * 7919) | 0;
  const random = rng(seed);
  const prefix = `/robust/${name}/`;
  const keys = Array.from({ length: KEYS }, (_, i) => `${prefix}k${i}`);
  const edgeKv = connectDoor("grpc", setup.edgeUrl);
  await waitFor("a first put through the proxy", async () => { await edgeKv.put(`${prefix}ready`, "1"); return true; }, 30_000);
  const startRevision = (await edgeKv.put(`${prefix}start`, "1")) + 1n;

  // Watches through the proxy, one per door, and two leases kept alive through it.
  const watches: PrefixWatch[] = DOORS.map((d) => watchPrefix(d, setup.edgeUrl, prefix, startRevision));
  await Promise.all(watches.map((w) => Promise.race([w.created, sleep(10_000).then(() => { throw new Error(`the ${w.door} watch was not created: ${w.ended}`); })])));
  const leases: { ID: bigint; protocol: ProtocolName; ka: ReturnType<typeof keepAlive> }[] = [];
  for (const protocol of ["grpc", "connect-binary"] as const) {
    const { ID } = await clientFor(Lease, protocol, setup.edgeUrl).leaseGrant({ TTL: 10n }, { timeoutMs: 5000 });
    leases.push({ ID, protocol, ka: keepAlive(protocol, setup.edgeUrl, ID) });
  }

  const clients: Client[] = [
    ...Array.from({ length: PROXY_CLIENTS }, (_, i) => {
      const d = DOORS[i % DOORS.length]!;
      return { name: `p${i}`, door: d === "gateway" ? gatewayDoor(setup.edgeUrl) : connectDoor(d, setup.edgeUrl), viaProxy: true };
    }),
    ...Array.from({ length: DIRECT_CLIENTS }, (_, i) => ({ name: `d${i}`, door: connectDoor("grpc", setup.directUrl), viaProxy: false })),
  ];
  const rec = newRecords();
  const began = performance.now();
  // The workload runs SECONDS, and at least 2 s past the end of the last fault (to see the recovery).
  let end = began + SECONDS * 1000;
  let faulting = true;
  const running = clients.map((c, i) => runClient(c, keys, seed + i + 1, () => (faulting ? Infinity : end), rec));

  // Faults: the first after 2 s, then one every 2-6 s while there is time for it to heal.
  const faults: Fault[] = [];
  await sleep(2000);
  for (let n = 0; n === 0 || performance.now() + 6000 < end; n++) {
    faults.push(...await setup.inject(n));
    end = Math.max(end, performance.now() + 2000);
    await sleep(2000 + random() * 4000);
  }
  faulting = false;
  await Promise.all(running);
  const workloadMs = performance.now() - began;

  // The truth: a sentinel written directly on etcd, and etcd's own history of the prefix up to it.
  const sentinel = await waitForValue("the sentinel put on etcd", () => connectDoor("grpc", setup.truthUrl).put(`${prefix}~end`, "1"));
  const truthWatch = watchPrefix("grpc", setup.truthUrl, prefix, 1n);
  await waitFor("etcd's history up to the sentinel", () => truthWatch.events.some((e) => e.revision >= sentinel), 30_000);
  truthWatch.close();
  const truth = truthWatch.events.filter((e) => e.revision <= sentinel);

  // 1. Leases, first: the linearizability search below blocks the event loop, keep-alives with it.
  for (const l of leases) {
    const ttl = await waitForValue("TimeToLive on etcd", () => clientFor(Lease, "grpc", setup.truthUrl).leaseTimeToLive({ ID: l.ID }, { timeoutMs: 3000 }));
    t.ok(ttl.TTL > 0n, `the lease kept alive over ${l.protocol} is alive (TTL ${ttl.TTL}; ${l.ka.answered()} keep-alives answered, stream re-opened ${l.ka.reopened()} times)`);
    l.ka.stop();
  }

  // 2. Serializable reads against the reader's own acknowledged writes.
  const deletesOf = (key: string) => truth.filter((e) => e.key === key && e.type === "DELETE").map((e) => e.revision);
  const stale = rec.serializable.filter((r) => {
    if (!r.after) return false;
    if (r.read.value !== undefined) return r.read.modRevision < r.after.revision;
    return r.after.kind === "put" && !deletesOf(r.key).some((d) => d > r.after!.revision);
  });
  t.same(stale.map((r) => ({ ...r, after: String(r.after?.revision), read: `${r.read.value}@${r.read.modRevision}` })), [], `no serializable read (of ${rec.serializable.length}) older than its client's own acknowledged write (seed ${SEED})`);

  // 3. Every acknowledged put is in etcd at its revision; no value applied twice.
  const byRevision = new Map(truth.map((e) => [e.revision, e]));
  const missing = rec.acked.filter((p) => { const e = byRevision.get(p.revision); return !e || e.key !== p.key || e.type !== "PUT" || e.value !== p.value; });
  t.same(missing.map((p) => ({ ...p, revision: String(p.revision) })), [], `every acknowledged put (${rec.acked.length}) is in etcd at its revision (seed ${SEED})`);
  const values = truth.filter((e) => e.type === "PUT").map((e) => `${e.key}=${e.value}`);
  t.equal(new Set(values).size, values.length, "no put was applied twice");

  // 4. Watches: etcd's history from the start revision, each event once, in order.
  const expected = truth.filter((e) => e.revision >= startRevision);
  for (const w of watches) {
    await waitFor(`the ${w.door} watch to reach the sentinel`, () => w.ended !== undefined || w.events.some((e) => e.revision >= sentinel), 30_000).catch(() => {});
    const got = w.events.filter((e) => e.revision <= sentinel);
    const firstDiff = got.findIndex((e, i) => !expected[i] || !sameEvent(e, expected[i]!));
    t.ok(got.length === expected.length && firstDiff === -1, `the ${w.door} watch saw all ${expected.length} events once and in order (seed ${SEED})`, {
      got: got.length,
      firstDiff,
      around: firstDiff >= 0 ? { got: got.slice(Math.max(0, firstDiff - 2), firstDiff + 3).map(String), expected: expected.slice(Math.max(0, firstDiff - 2), firstDiff + 3).map(String) } : undefined,
    });
    t.equal(w.ended, undefined, `the ${w.door} watch stream stayed open`);
    w.close();
  }

  // 5. Recovery: after each fault, writes through the proxy are acknowledged again.
  const proxied = rec.acked.filter((p) => p.client.startsWith("p"));
  const recoveries: number[] = [];
  const gaps: number[] = [];
  proxied.sort((a, b) => a.ret - b.ret);
  for (const f of faults) {
    const first = proxied.find((p) => p.call >= f.from);
    t.ok(first && first.ret - f.from < 15_000, `writes through the proxy acknowledged again after ${f.kind}`);
    if (first) recoveries.push(Math.round(first.ret - f.from));
    // The longest time without an acknowledged write through the proxy, around the fault.
    const rets = [f.at, ...proxied.map((p) => p.ret).filter((r) => r > f.at && r <= f.from + 10_000)];
    gaps.push(Math.round(Math.max(0, ...rets.slice(1).map((r, i) => r - rets[i]!))));
  }

  // 6. Linearizability of the KV history.
  const lin = checkHistory(rec.ops);
  const bad = lin.keys.find((k) => k.verdict !== "ok");
  t.equal(lin.verdict, "ok", `the history of ${rec.ops.length} KV operations is linearizable (seed ${SEED})`, bad ? {
    key: bad.key,
    verdict: bad.verdict,
    linearizedPrefix: bad.longestPrefix?.slice(-10).map(describe),
    ops: rec.ops.filter((o) => o.key === bad.key).sort((a, b) => a.call - b.call).slice(0, 200).map(describe),
  } : {});

  const byDoor = new Map<string, number>();
  for (const o of rec.ops) byDoor.set(o.client!, (byDoor.get(o.client!) ?? 0) + 1);
  const figures = {
    scenario: name, seed: SEED, seconds: Math.round(workloadMs / 1000), linearizable: rec.ops.length, unknownWrites: rec.unknownWrites,
    failedReads: rec.failedReads, serializable: rec.serializable.length, ackedPuts: rec.acked.length,
    watchEvents: expected.length * watches.length, faults: faults.map((f) => f.kind), recoveryMs: recoveries, longestWriteGapMs: gaps, searchSteps: lin.steps, refusedDirectWrites: rec.refusedWrites,
  };
  t.comment(JSON.stringify(figures));
  t.comment(`errors seen by clients: ${JSON.stringify(Object.fromEntries(rec.errors))}`);
  if (REPORT) appendFileSync(REPORT, JSON.stringify(figures) + "\n");
}

/** Retries `f` until it answers (etcd may still be recovering). */
async function waitForValue<T>(what: string, f: () => Promise<T>): Promise<T> {
  let value: T | undefined;
  await waitFor(what, async () => { value = await f(); return true; }, 30_000);
  return value!;
}

t.test("single etcd SIGKILLed and restarted (same data dir)", async (t) => {
  const { members: [etcd] } = await startCluster(t, 1);
  const edge = await startEdge(t, [`--endpoints=${etcd!.endpoint}`]);
  await scenario(t, "kill", {
    edgeUrl: edge.url, directUrl: etcd!.url, truthUrl: etcd!.url,
    async inject() {
      // Recovery is measured from the restart: a single etcd can answer nothing before.
      const at = performance.now();
      await etcd!.kill();
      await sleep(1500);
      await etcd!.restart();
      return [{ kind: "SIGKILL + restart after 1.5 s", at, from: performance.now() }];
    },
  });
});

t.test("single etcd SIGSTOPped and resumed", async (t) => {
  const { members: [etcd] } = await startCluster(t, 1);
  const edge = await startEdge(t, [`--endpoints=${etcd!.endpoint}`]);
  await scenario(t, "stop", {
    edgeUrl: edge.url, directUrl: etcd!.url, truthUrl: etcd!.url,
    async inject() {
      const at = performance.now();
      etcd!.pause();
      await sleep(3000);
      etcd!.resume();
      return [{ kind: "SIGSTOP 3 s", at, from: performance.now() }];
    },
  });
});

// etcd's election timeout at 500 ms (heartbeat 50 ms), as in test/integration/failover.test.ts.
const RAFT = ["--heartbeat-interval=50", "--election-timeout=500"];

t.test("3-member cluster: the leader killed", async (t) => {
  const cluster = await startCluster(t, 3, RAFT);
  await leaderFirst(cluster.members);
  const edge = await startEdge(t, [`--endpoints=${cluster.endpoints}`]);
  const [, , m2] = cluster.members;
  await scenario(t, "leader", {
    edgeUrl: edge.url, directUrl: m2!.url, truthUrl: m2!.url,
    async inject() {
      // The leader (the member the proxy uses, the first time); restarted after 3 s.
      const leader = await leaderOf(cluster.members);
      const from = performance.now();
      await leader.kill();
      await sleep(3000);
      await leader.restart();
      return [{ kind: `leader ${leader.name} SIGKILL`, at: from, from }];
    },
  });
});

t.test("3-member cluster: the network to the member in use cut (reset, then stalled)", async (t) => {
  const cluster = await startCluster(t, 3, RAFT);
  const nets: NetFault[] = [];
  for (const m of cluster.members) nets.push(await startNetFault(t, { host: "127.0.0.1", port: Number(m.endpoint.split(":")[1]) }));
  const edge = await startEdge(t, [`--endpoints=${nets.map((n) => n.addr).join(",")}`]);
  const [, , m2] = cluster.members;
  await scenario(t, "net", {
    edgeUrl: edge.url, directUrl: m2!.url, truthUrl: m2!.url,
    async inject() {
      // The member in use, as /health names it: reset for 2 s, then (after 1.5 s) stalled for 2.5 s.
      const faults: Fault[] = [];
      for (const mode of ["drop", "stall"] as const) {
        const health = await (await fetch(`${edge.url}/health`)).json() as { endpoint: string };
        const net = nets.find((x) => health.endpoint === `http://${x.addr}`);
        if (!net) throw new Error(`/health names no endpoint of ours: ${JSON.stringify(health)}`);
        const from = performance.now();
        net.set(mode);
        await sleep(mode === "drop" ? 2000 : 2500);
        net.set("pass");
        faults.push({ kind: `network to ${net.addr} ${mode === "drop" ? "reset 2 s" : "stalled 2.5 s"}`, at: from, from });
        if (mode === "drop") await sleep(1500);
      }
      return faults;
    },
  });
});
