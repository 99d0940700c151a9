/**
 * --fairness and its --fairness-* flags (upstream/client/fairness.ts) as options. Off by default, so no
 * caller is throttled by an upgrade; each bound's default and the reason for it are in the flags' help.
 */
import { FlagError, parseDuration, type FlagValues } from "./flags.js";

export type FlowSourceName = "cert" | "user" | "address";

export interface FairnessConfig {
  seats: number;
  flowSeats: number;
  queues: number;
  handSize: number;
  queueLength: number;
  maxWaitMs: number;
  /** What a flow is named after, first known wins (wire/flow.ts). */
  flowBy: FlowSourceName[];
}

/** ProxyOptions' part: --fairness and its --fairness-* bounds; undefined: off. */
export interface WithFairness {
  fairness: FairnessConfig | undefined;
}

const SOURCES: readonly string[] = ["cert", "user", "address"];

export function fairnessOptions(values: FlagValues): FairnessConfig | undefined {
  if (values["fairness"] !== "true") return undefined;
  const int = (name: string) => {
    const n = Number(values[name]);
    if (!Number.isSafeInteger(n) || n <= 0) throw new FlagError(`--${name} must be a positive integer, got "${values[name]}"`);
    return n;
  };
  const c: FairnessConfig = {
    seats: int("fairness-seats"),
    flowSeats: int("fairness-flow-seats"),
    queues: int("fairness-queues"),
    handSize: int("fairness-hand-size"),
    queueLength: int("fairness-queue-length"),
    maxWaitMs: parseDuration(values["fairness-max-wait"] || "5s") ?? 5000,
    flowBy: (values["fairness-flow"] ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "") as FlowSourceName[],
  };
  if (c.handSize > c.queues) throw new FlagError(`--fairness-hand-size=${c.handSize} is more than --fairness-queues=${c.queues}`);
  if (c.maxWaitMs <= 0) throw new FlagError("--fairness-max-wait must be positive");
  const bad = c.flowBy.find((s) => !SOURCES.includes(s));
  if (bad !== undefined || c.flowBy.length === 0) throw new FlagError(`--fairness-flow: a comma list of cert, user, address (got "${values["fairness-flow"]}")`);
  return c;
}
