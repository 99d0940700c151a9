/**
 * The proxy's logger: JSON lines on stderr (pino), as operators' log pipelines read them. `--debug` turns
 * it down to one line per request (listener/route.ts); otherwise warnings and errors only, plus the
 * start-up line. Synchronous writes: log lines are rare unless --debug is on, and a crash must not lose
 * the last ones.
 */
import { pino, type Logger as PinoLogger } from "pino";

export type Logger = PinoLogger;

export function createLogger(o: { debug: boolean }): Logger {
  return pino({ level: o.debug ? "debug" : "info", base: { name: "etcd-edge" } }, pino.destination({ dest: 2, sync: true }));
}

/** A logger that writes nothing (tests that start the proxy in-process). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
