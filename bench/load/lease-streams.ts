/**
 * Lease keep-alive streams: `streams` clients, each with its own lease and its own LeaseKeepAlive stream
 * to the target, over `connections` connections. Each client sends `rounds` keep-alives, one at a time:
 * the first at a random moment within `spreadMs` (clients are not synchronised), the next `gapMs` after
 * the previous reply. Latency = request written → reply read. A client whose reply does not come within
 * `timeoutMs` is counted as a timeout and stops (its stream would be out of step).
 */
import { fromBinary } from "@bufbuild/protobuf";
import { performance } from "node:perf_hooks";
import { LeaseKeepAliveResponseSchema } from "../../gen/etcdserverpb/rpc_pb.js";
import type { Control } from "./control.js";
import { bidi, type BidiStream } from "./grpc-raw.js";
import { grantLeases, revokeLeases } from "./lease-grants.js";
import { leaseKeepAliveRequest, PATH } from "./messages.js";
import type { GenResult, Task } from "./protocol.js";
import { SessionPool } from "./sessions.js";
import { Samples } from "./stats.js";

type LeaseTask = Extract<Task, { kind: "lease-streams" }>;

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function leaseStreams(t: LeaseTask, control: Control): Promise<GenResult> {
  const etcdPool = await SessionPool.open(t.etcdUrl, 1);
  const etcd = etcdPool.get(0);
  let ids: bigint[] = [];
  const sessions = await SessionPool.open(t.url, t.connections).catch((err) => { etcdPool.close(); throw err; });
  const streams: BidiStream[] = [];
  try {
    ids = await withTimeout(grantLeases(etcd, t.streams, t.ttlSeconds), t.setupTimeoutMs, "granting leases");
    const latencies = new Samples();
    let errors = 0;
    let timeouts = 0;
    let firstError: string | undefined;
    let stopping = false;
    const fail = (msg: string) => { errors++; firstError ??= msg; };
    /** The reply each client waits for; a stream has at most one keep-alive outstanding. */
    const waiters: (((ttl: bigint) => void) | undefined)[] = new Array(t.streams);
    for (let i = 0; i < t.streams; i++) {
      const onMessage = (m: Buffer) => {
        const w = waiters[i];
        waiters[i] = undefined;
        if (w) w(fromBinary(LeaseKeepAliveResponseSchema, m).TTL);
      };
      streams.push(bidi(sessions.get(i), PATH.leaseKeepAlive, onMessage, (err) => { if (err && !stopping) fail(`keep-alive stream ended: ${err}`); }));
    }
    await control.ready();
    const cpuStart = process.cpuUsage();
    const started = now();

    const keepAliveOnce = (i: number, req: Buffer) => new Promise<boolean>((resolve) => {
      const t0 = now();
      const timer = setTimeout(() => { waiters[i] = undefined; timeouts++; resolve(false); }, t.timeoutMs);
      waiters[i] = (ttl) => {
        clearTimeout(timer);
        if (ttl > 0n) latencies.push(now() - t0);
        else fail(`keep-alive answered TTL ${ttl}: the lease is gone`);
        resolve(ttl > 0n);
      };
      streams[i]!.send(req);
    });
    const client = async (i: number, rounds: number, firstDelayMs: number) => {
      if (rounds <= 0) return true;
      const req = leaseKeepAliveRequest(ids[i]!);
      await sleep(firstDelayMs);
      for (let r = 0; r < rounds; r++) {
        if (r > 0) await sleep(t.gapMs);
        if (!(await keepAliveOnce(i, req))) return false;
      }
      return true;
    };
    // Round one for every client, then a sample (every stream is open at etcd or at the proxy by now),
    // then the remaining rounds.
    const alive = await Promise.all(ids.map((_, i) => client(i, 1, Math.random() * t.spreadMs)));
    await control.sample();
    await Promise.all(ids.map((_, i) => (alive[i] ? client(i, t.rounds - 1, t.gapMs) : Promise.resolve(false))));
    const seconds = (now() - started) / 1000;
    const cpu = process.cpuUsage(cpuStart);
    await control.end();
    stopping = true;
    return {
      units: latencies.length,
      errors,
      ...(firstError ? { firstError } : {}),
      latenciesMs: latencies.toArray(),
      seconds,
      cpuMs: (cpu.user + cpu.system) / 1000,
      extra: { timeouts, streams: t.streams, reconnects: sessions.reconnects },
    };
  } finally {
    for (const s of streams) s.cancel();
    sessions.close();
    await withTimeout(revokeLeases(etcd, ids), t.setupTimeoutMs, "revoking leases").catch(() => {});
    etcdPool.close();
  }
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms); });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
