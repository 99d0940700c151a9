/**
 * Watch history: `watchers` puts go straight to etcd under HIST_PREFIX (one revision each), then
 * `watchers` watch streams on the prefix open on the target, spread over `connections` connections, the
 * i-th from the revision of the i-th put: every watcher replays a different stretch of recent history.
 * A unit is one watcher that has received every event from its start to the last put; its latency is from
 * its create to that last event. Each stream is checked against what etcd's history is (the puts from its
 * start, in order, each once, with its revision and value): `mismatchedStreams` counts those that differ.
 * Sampled (the runner counts etcd's watchers) once every watcher is complete, before any is closed.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { performance } from "node:perf_hooks";
import { PutResponseSchema, WatchRequestSchema, WatchResponseSchema } from "../../gen/etcdserverpb/rpc_pb.js";
import type { Control } from "./control.js";
import { frame } from "./grpc-frame.js";
import { bidi, unaryAsync, type BidiStream } from "./grpc-raw.js";
import { HIST_END, HIST_PREFIX, PATH, putRequest } from "./messages.js";
import type { GenResult, Task } from "./protocol.js";
import { SessionPool } from "./sessions.js";
import { Samples } from "./stats.js";

type HistoryTask = Extract<Task, { kind: "watch-history" }>;

const now = () => performance.timeOrigin + performance.now();
const enc = (s: string) => new TextEncoder().encode(s);

export async function watchHistory(t: HistoryTask, control: Control): Promise<GenResult> {
  const etcdPool = await SessionPool.open(t.etcdUrl, 1);
  const sessions = await SessionPool.open(t.url, t.connections).catch((err) => { etcdPool.close(); throw err; });
  const streams: BidiStream[] = [];
  try {
    const nonce = `${process.pid}-${Date.now()}`;
    const revisions: bigint[] = [];
    for (let i = 0; i < t.watchers; i++) {
      const reply = await unaryAsync(etcdPool.get(0), PATH.put, putRequest(`${HIST_PREFIX}${i % 50}`, enc(`${nonce}:${i}`)));
      revisions.push(fromBinary(PutResponseSchema, reply).header!.revision);
    }
    await control.ready();
    const cpuStart = process.cpuUsage();
    const started = now();
    const latencies = new Samples();
    let complete = 0;
    let mismatched = 0;
    let errors = 0;
    let firstError: string | undefined;
    let allDone: (() => void) | undefined;
    const done = new Promise<void>((resolve) => { allDone = resolve; });
    const decoder = new TextDecoder();
    for (let w = 0; w < t.watchers; w++) {
      const sentAt = now();
      let next = w; // the index of the put this watcher must see next
      let wrong = false;
      let finished = false;
      const onMessage = (m: Buffer) => {
        const r = fromBinary(WatchResponseSchema, m);
        if (r.canceled) { errors++; firstError ??= `watch canceled: ${r.cancelReason}`; }
        for (const e of r.events) {
          const [evNonce, index] = decoder.decode(e.kv?.value).split(":");
          if (evNonce !== nonce) continue; // an earlier run's event: not part of this history
          if (Number(index) !== next || e.kv?.modRevision !== revisions[next] || decoder.decode(e.kv?.key) !== `${HIST_PREFIX}${next % 50}`) wrong = true;
          next++;
        }
        if (!finished && next >= t.watchers) {
          finished = true;
          complete++;
          if (wrong) mismatched++;
          latencies.push(now() - sentAt);
          if (complete === t.watchers) allDone?.();
        }
      };
      const stream = bidi(sessions.get(w), PATH.watch, onMessage, (err) => { if (err && !finished) { errors++; firstError ??= `watch stream ended: ${err}`; } });
      stream.send(frame(toBinary(WatchRequestSchema, create(WatchRequestSchema, {
        requestUnion: { case: "createRequest", value: { key: enc(HIST_PREFIX), rangeEnd: enc(HIST_END), startRevision: revisions[w]! } },
      }))));
      streams.push(stream);
    }
    await Promise.race([done, new Promise((r) => setTimeout(r, t.setupTimeoutMs))]);
    const seconds = (now() - started) / 1000;
    const cpu = process.cpuUsage(cpuStart);
    await control.sample();
    await control.end();
    return {
      units: complete,
      errors,
      ...(firstError ? { firstError } : {}),
      latenciesMs: latencies.toArray(),
      seconds,
      cpuMs: (cpu.user + cpu.system) / 1000,
      extra: { watchersComplete: complete, incompleteWatchers: t.watchers - complete, mismatchedStreams: mismatched },
    };
  } finally {
    for (const s of streams) s.cancel();
    sessions.close();
    etcdPool.close();
  }
}
