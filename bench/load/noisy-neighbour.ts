/**
 * Noisy neighbour (issue 15): a quiet client sends QUIET_PER_S small linearizable Ranges a second (an
 * open loop, one every 10 ms whatever the answers do) from 127.0.0.1, first alone for the measured
 * duration, then again while a noisy client keeps `noisy` linearizable Ranges of all NOISY_KEYS keys under
 * NOISY_PREFIX in flight from 127.0.0.2 (another address: another flow for etcd-edge's --fairness). A unit
 * is one quiet call in the noisy phase; its latency is the row's p50/p99, and `aloneP99Ms` and
 * `noiseRatio` (p99 with the noise / p99 alone) say what the noise cost the quiet client.
 * The keys are put straight into etcd once (skipped when a count-only Range finds them there).
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as http2 from "node:http2";
import { performance } from "node:perf_hooks";
import { RangeRequestSchema, RangeResponseSchema } from "../../gen/etcdserverpb/rpc_pb.js";
import type { Control } from "./control.js";
import { frame } from "./grpc-frame.js";
import { unary, unaryAsync } from "./grpc-raw.js";
import { HOT_KEY, PATH, putRequest, rangeKeyRequest } from "./messages.js";
import type { GenResult, Task } from "./protocol.js";
import { forEachLimited, SessionPool } from "./sessions.js";
import { percentile, Samples, sortedCopy } from "./stats.js";

type NoisyTask = Extract<Task, { kind: "noisy-neighbour" }>;

export const NOISY_PREFIX = "bench/noisy/";
export const NOISY_END = "bench/noisy0";
export const NOISY_KEYS = 10_000;
const QUIET_PER_S = 100;
const NOISY_CONNECTIONS = 4;

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A connection from `localAddress` (node:http2 hands it to net.connect). */
function connectFrom(url: string, localAddress: string): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url, { maxSessionMemory: 256, settings: { enablePush: false }, localAddress } as http2.ClientSessionOptions);
    session.once("connect", () => resolve(session));
    session.once("error", reject);
    session.on("error", () => {});
  });
}

async function seed(etcdUrl: string): Promise<void> {
  const etcd = await SessionPool.open(etcdUrl, 1);
  try {
    const count = fromBinary(RangeResponseSchema, await unaryAsync(etcd.get(0), PATH.range, frame(toBinary(RangeRequestSchema, create(RangeRequestSchema, {
      key: new TextEncoder().encode(NOISY_PREFIX), rangeEnd: new TextEncoder().encode(NOISY_END), countOnly: true,
    }))))).count;
    if (count >= BigInt(NOISY_KEYS)) return;
    const value = new Uint8Array(32).fill(0x6e);
    const keys = Array.from({ length: NOISY_KEYS }, (_, i) => `${NOISY_PREFIX}${String(i).padStart(5, "0")}`);
    await forEachLimited(keys, 64, async (key) => { await unaryAsync(etcd.get(0), PATH.put, putRequest(key, value)); });
  } finally {
    etcd.close();
  }
}

/** The quiet client for `ms`: its latencies, and its failures. */
async function quiet(session: http2.ClientHttp2Session, ms: number): Promise<{ latencies: Samples; errors: number; firstError?: string }> {
  const request = rangeKeyRequest(HOT_KEY, false);
  const latencies = new Samples();
  let errors = 0;
  let firstError: string | undefined;
  const calls: Promise<void>[] = [];
  const start = now();
  for (let i = 0; now() - start < ms; i++) {
    const sentAt = now();
    calls.push(new Promise((resolve) => unary(session, PATH.range, request, (err) => {
      if (err) { errors++; firstError ??= err; } else latencies.push(now() - sentAt);
      resolve();
    })));
    // An open loop: the next call is due at its slot, whether or not the last one was answered.
    await sleep(Math.max(0, start + ((i + 1) * 1000) / QUIET_PER_S - now()));
  }
  await Promise.all(calls);
  return { latencies, errors, ...(firstError ? { firstError } : {}) };
}

export async function noisyNeighbour(t: NoisyTask, control: Control): Promise<GenResult> {
  await seed(t.etcdUrl);
  const quietSession = await connectFrom(t.url, "127.0.0.1");
  const noisySessions = await Promise.all(Array.from({ length: NOISY_CONNECTIONS }, () => connectFrom(t.url, "127.0.0.2")));
  try {
    await control.ready();
    const cpuStart = process.cpuUsage();
    const alone = await quiet(quietSession, t.phaseMs);
    const noisyRequest = frame(toBinary(RangeRequestSchema, create(RangeRequestSchema, {
      key: new TextEncoder().encode(NOISY_PREFIX), rangeEnd: new TextEncoder().encode(NOISY_END),
    })));
    let stop = false;
    let noisyDone = 0;
    let noisyRefused = 0;
    let noisyPhaseStart = 0;
    let noisyInPhase = 0;
    const loops = Array.from({ length: t.noisy }, (_, slot) => new Promise<void>((resolve) => {
      const next = () => {
        if (stop) return resolve();
        unary(noisySessions[slot % NOISY_CONNECTIONS]!, PATH.range, noisyRequest, (err) => {
          if (err) noisyRefused++;
          else {
            noisyDone++;
            if (noisyPhaseStart && now() >= noisyPhaseStart) noisyInPhase++;
          }
          // A refused call is retried after a pause, as a client honouring Retry-After would (not in a hot loop).
          if (err) setTimeout(next, 100);
          else next();
        });
      };
      next();
    }));
    await sleep(t.warmupMs);
    noisyPhaseStart = now();
    const withNoise = await quiet(quietSession, t.phaseMs);
    const seconds = (now() - noisyPhaseStart) / 1000;
    stop = true;
    await Promise.all(loops);
    const cpu = process.cpuUsage(cpuStart);
    await control.end();
    const aloneP99 = percentile(sortedCopy(alone.latencies.toArray()), 99);
    const noisyP99 = percentile(sortedCopy(withNoise.latencies.toArray()), 99);
    const firstError = withNoise.firstError ?? alone.firstError;
    return {
      units: withNoise.latencies.length,
      errors: withNoise.errors + alone.errors,
      ...(firstError ? { firstError } : {}),
      latenciesMs: withNoise.latencies.toArray(),
      seconds,
      cpuMs: (cpu.user + cpu.system) / 1000,
      extra: {
        ...(aloneP99 !== undefined ? { aloneP99Ms: aloneP99 } : {}),
        ...(aloneP99 !== undefined && noisyP99 !== undefined && aloneP99 > 0 ? { noiseRatio: noisyP99 / aloneP99 } : {}),
        noisyPerSec: noisyInPhase / seconds,
        noisyRefused,
        noisyCalls: noisyDone + noisyRefused,
      },
    };
  } finally {
    quietSession.destroy();
    for (const s of noisySessions) s.destroy();
  }
}
