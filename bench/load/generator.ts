/**
 * A load generator process: forked by the orchestrator, runs one task of one workload against one target
 * and exits. Its own process, so its CPU never counts as the target's, and a hung run can be killed by
 * PID. It also exits when the orchestrator goes away (IPC disconnect).
 */
import { control, inbox, send } from "./control.js";
import { oneShotCaller } from "./lease-oneshot.js";
import { leaseStreams } from "./lease-streams.js";
import { noisyNeighbour } from "./noisy-neighbour.js";
import type { GenResult, Task, ToGenerator } from "./protocol.js";
import { connectCaller, gatewayCaller, rawCaller, type CallerSet } from "./unary-callers.js";
import { runLoop } from "./unary-loop.js";
import { watchFanout } from "./watch-fanout.js";
import { watchHistory } from "./watch-history.js";

async function closedLoop(task: Extract<Task, { concurrency: number }>, open: () => Promise<CallerSet>): Promise<GenResult> {
  const callers = await open();
  try {
    const window = await control.ready();
    if (!window) throw new Error("a closed loop needs a window from the orchestrator");
    const result = await runLoop(callers.call, task.concurrency, window, task.slotOffset);
    await control.end();
    return { ...result, extra: { ...result.extra, ...callers.extra?.() } };
  } finally {
    await callers.close();
  }
}

function run(task: Task): Promise<GenResult> {
  switch (task.kind) {
    case "unary-raw": return closedLoop(task, () => rawCaller(task.url, task.request, task));
    case "unary-connect": return closedLoop(task, () => connectCaller(task.url, task.protocol, task));
    case "unary-gateway": return closedLoop(task, () => gatewayCaller(task.url, task, task.serializable));
    case "lease-oneshot": return closedLoop(task, () => oneShotCaller(task));
    case "watch-fanout": return watchFanout(task, control);
    case "watch-history": return watchHistory(task, control);
    case "lease-streams": return leaseStreams(task, control);
    case "noisy-neighbour": return noisyNeighbour(task, control);
  }
}

process.on("message", (m: ToGenerator) => inbox.deliver(m));
process.on("disconnect", () => process.exit(0));

const first = await inbox.next("task");
try {
  const result = await run(first.task);
  await send({ type: "result", result });
} catch (err) {
  await send({ type: "failed", error: err instanceof Error ? err.message : String(err) });
}
// Sessions and timers of a finished run must not keep the process alive; the result is out.
process.exit(0);
