/**
 * Every process the benchmark starts is registered here and stopped by its PID: at the end, on an error,
 * and on SIGINT/SIGTERM (then synchronously, with SIGKILL, before the benchmark exits).
 */
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";

export interface Managed {
  name: string;
  pid: number;
  proc: ChildProcess;
  /** The last 20 KB it wrote to stdout and stderr. */
  output(): string;
  exited(): boolean;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
}

const running = new Set<Managed>();

export function startProcess(name: string, cmd: string, args: string[], options: SpawnOptions = {}): Managed {
  const proc = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], ...options });
  if (proc.pid === undefined) throw new Error(`could not start ${name} (${cmd})`);
  let out = "";
  const collect = (d: Buffer) => { out = (out + d.toString()).slice(-20_000); };
  proc.stdout?.on("data", collect);
  proc.stderr?.on("data", collect);
  let exited = false;
  const exitedP = new Promise<void>((resolve) => proc.once("exit", () => { exited = true; running.delete(m); resolve(); }));
  proc.on("error", (err) => { out += `\n[spawn error] ${err.message}`; });
  const m: Managed = {
    name,
    pid: proc.pid,
    proc,
    output: () => out,
    exited: () => exited,
    async stop(graceMs = 3000) {
      if (exited) return;
      killPid(proc.pid!, "SIGTERM");
      const timer = setTimeout(() => killPid(proc.pid!, "SIGKILL"), graceMs);
      await exitedP;
      clearTimeout(timer);
    },
  };
  running.add(m);
  return m;
}

/** Registers a process started elsewhere (a forked generator) so a signal still stops it. */
export function track(name: string, proc: ChildProcess): void {
  if (proc.pid === undefined) return;
  const m: Managed = { name, pid: proc.pid, proc, output: () => "", exited: () => proc.exitCode !== null || proc.signalCode !== null, stop: async () => { killPid(proc.pid!, "SIGKILL"); } };
  running.add(m);
  proc.once("exit", () => running.delete(m));
}

function killPid(pid: number, signal: NodeJS.Signals): void {
  try { process.kill(pid, signal); } catch { /* already gone */ }
}

export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((m) => m.stop()));
}

/** Last resort on a signal or a crash: SIGKILL every PID we started, synchronously. */
export function killAllNow(): void {
  for (const m of running) killPid(m.pid, "SIGKILL");
  running.clear();
}

/**
 * Stop everything on Ctrl-C / SIGTERM / an uncaught error, or when the parent goes away (`npm run` does not
 * pass a SIGTERM on to its script), then exit; `cleanup` removes temp files.
 */
export function stopOnSignals(cleanup: () => void): void {
  const bail = (code: number) => {
    killAllNow();
    try { cleanup(); } catch { /* best effort */ }
    process.exit(code);
  };
  process.once("SIGINT", () => { process.stderr.write("\nbench: interrupted, stopping everything it started\n"); bail(130); });
  process.once("SIGTERM", () => bail(143));
  process.once("uncaughtException", (err) => { process.stderr.write(`bench: ${err.stack ?? err.message}\n`); bail(1); });
  process.once("unhandledRejection", (err) => { process.stderr.write(`bench: unhandled rejection: ${String(err)}\n`); bail(1); });
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) { process.stderr.write("bench: parent process went away, stopping everything it started\n"); bail(143); }
  }, 1000).unref();
}
