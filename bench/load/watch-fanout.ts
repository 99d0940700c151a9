/**
 * Watch fan-out: `watchers` watch streams on one key, spread over `connections` connections to the target
 * (one watcher per stream, as independent clients would have), then `puts` Puts straight to etcd, one at
 * a time. Latency of a delivery = when the watcher got the event − when the Put's reply arrived (0 when
 * the event came first). The next Put waits until every watcher got the last one (or the timeout).
 */
import { fromBinary } from "@bufbuild/protobuf";
import { performance } from "node:perf_hooks";
import { WatchResponseSchema } from "../../gen/etcdserverpb/rpc_pb.js";
import type { Control } from "./control.js";
import { bidi, unaryAsync, type BidiStream } from "./grpc-raw.js";
import { PATH, putRequest, watchCreateRequest, WATCH_KEY } from "./messages.js";
import type { GenResult, Task } from "./protocol.js";
import { SessionPool } from "./sessions.js";
import { Samples } from "./stats.js";

type WatchTask = Extract<Task, { kind: "watch-fanout" }>;

const now = () => performance.timeOrigin + performance.now();
/** Pause between one Put's last delivery and the next Put, so a slow delivery never overlaps the next. */
const GAP_MS = 10;

export async function watchFanout(t: WatchTask, control: Control): Promise<GenResult> {
  const sessions = await SessionPool.open(t.url, t.connections);
  const etcdPool = await SessionPool.open(t.etcdUrl, 1).catch((err) => { sessions.close(); throw err; });
  const streams: BidiStream[] = [];
  try {
    // Values carry a run nonce: events of earlier runs (a proxy may start a watcher at an older revision)
    // are counted as stale, not as deliveries.
    const nonce = `${process.pid}-${Date.now()}`;
    const arrivals = new Float64Array(t.puts * t.watchers).fill(NaN);
    const delivered = new Uint32Array(t.puts);
    let created = 0;
    let errors = 0;
    let stale = 0;
    let duplicates = 0;
    let firstError: string | undefined;
    let waiting: { put: number; resolve: () => void } | undefined;
    let stopping = false;
    const fail = (msg: string) => { errors++; firstError ??= msg; };
    const create = watchCreateRequest();
    const decoder = new TextDecoder();

    for (let w = 0; w < t.watchers; w++) {
      let isCreated = false;
      const onMessage = (m: Buffer) => {
        const at = now();
        const res = fromBinary(WatchResponseSchema, m);
        if (res.created && !isCreated) { isCreated = true; created++; }
        if (res.canceled) fail(`watch canceled: ${res.cancelReason || "(no reason)"}`);
        for (const ev of res.events) {
          const [evNonce, index] = decoder.decode(ev.kv?.value).split(":");
          const put = Number(index);
          if (evNonce !== nonce || !(put >= 0 && put < t.puts)) { stale++; continue; }
          const slot = put * t.watchers + w;
          if (!Number.isNaN(arrivals[slot]!)) { duplicates++; continue; }
          arrivals[slot] = at;
          delivered[put]!++;
          if (waiting?.put === put && delivered[put] === created) waiting.resolve();
        }
      };
      const stream = bidi(sessions.get(w), PATH.watch, onMessage, (err) => { if (err && !stopping) fail(`watch stream ended: ${err}`); });
      stream.send(create);
      streams.push(stream);
    }
    const setupDeadline = Date.now() + t.setupTimeoutMs;
    while (created + errors < t.watchers && Date.now() < setupDeadline) await sleep(20);
    if (created === 0) throw new Error(`no watcher was created within ${t.setupTimeoutMs} ms${firstError ? `: ${firstError}` : ""}`);
    await control.sample();
    await control.ready();

    const cpuStart = process.cpuUsage();
    const started = now();
    const putReplyAt = new Float64Array(t.puts).fill(NaN);
    for (let p = 0; p < t.puts; p++) {
      const allIn = new Promise<void>((resolve) => { waiting = { put: p, resolve }; });
      const value = new TextEncoder().encode(`${nonce}:${p}`);
      await unaryAsync(etcdPool.get(0), PATH.put, putRequest(WATCH_KEY, value));
      putReplyAt[p] = now();
      if (delivered[p]! < created) await Promise.race([allIn, sleep(t.deliveryTimeoutMs)]);
      waiting = undefined;
      await sleep(GAP_MS);
    }
    const seconds = (now() - started) / 1000;
    const cpu = process.cpuUsage(cpuStart);
    await control.end();
    stopping = true;

    const latencies = new Samples();
    for (let p = 0; p < t.puts; p++) {
      for (let w = 0; w < t.watchers; w++) {
        const at = arrivals[p * t.watchers + w]!;
        if (!Number.isNaN(at)) latencies.push(Math.max(0, at - putReplyAt[p]!));
      }
    }
    const expected = t.puts * created;
    return {
      units: latencies.length,
      errors,
      ...(firstError ? { firstError } : {}),
      latenciesMs: latencies.toArray(),
      seconds,
      cpuMs: (cpu.user + cpu.system) / 1000,
      extra: { watchersCreated: created, missingDeliveries: expected - latencies.length, staleEvents: stale, duplicateEvents: duplicates },
    };
  } finally {
    for (const s of streams) s.cancel();
    sessions.close();
    etcdPool.close();
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
