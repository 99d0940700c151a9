/**
 * etcd-edge for a test, run as users run it: the `etcd-edge` bin (compiled dist/) in a child process,
 * on a free port, stopped by PID when the test ends. EDGE_RUNTIME=node-npm|deno|bun runs it under that runtime.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { freePort, waitFor } from "./ports.js";

const BIN = fileURLToPath(new URL("../../bin/etcd-edge.js", import.meta.url));
const MAIN_TS = fileURLToPath(new URL("../../src/main.ts", import.meta.url));
const LOCAL_BIN = (name: string) => fileURLToPath(new URL(`../../node_modules/.bin/${name}`, import.meta.url));

export interface EdgeProxy {
  /** 127.0.0.1:port */
  addr: string;
  port: number;
  /** http(s)://127.0.0.1:port */
  url: string;
  process: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

interface Tap { teardown(fn: () => unknown): void }

/**
 * The command line that runs the proxy. EDGE_RUNTIME=node-npm|deno|bun|node-dist runs the compiled bin
 * (dist/, as `npm ci` leaves it) under that runtime (node-npm: the npm registry's `node` package, a dev
 * dependency like deno and bun; node-dist: the Node running the test); the default runs src/ through tsx,
 * so a test never sees a stale build. test/e2e/bin.test.ts covers the bin itself.
 */
export function runtimeCommand(): [string, string[]] {
  const rt = process.env["EDGE_RUNTIME"] ?? "node";
  // The runtimes' own binaries (node_modules/.bin links to them once their postinstall ran), not npx:
  // stop() kills by PID, and killing npx would leave its deno or bun child running.
  if (rt === "deno") return [LOCAL_BIN("deno"), ["run", "-A", BIN]];
  if (rt === "bun") return [LOCAL_BIN("bun"), [BIN]];
  if (rt === "node-npm") return [LOCAL_BIN("node"), [BIN]];
  if (rt === "node-dist") return [process.execPath, [BIN]];
  return [process.execPath, ["--import", "tsx", MAIN_TS]];
}

export async function startEdge(t: Tap | undefined, args: string[], o: { tls?: boolean; waitHealthy?: boolean } = {}): Promise<EdgeProxy> {
  const port = await freePort();
  const [cmd, pre] = runtimeCommand();
  const proc = spawn(cmd, [...pre, "start", `--listen-addr=127.0.0.1:${port}`, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const collect = (d: Buffer) => { out = (out + d.toString()).slice(-20_000); };
  proc.stdout!.on("data", collect);
  proc.stderr!.on("data", collect);
  let exited = false;
  proc.on("exit", () => { exited = true; });
  const stop = async () => {
    if (exited) return;
    proc.kill("SIGKILL");
    await new Promise((r) => proc.once("exit", r));
  };
  t?.teardown(stop);
  await waitFor(`etcd-edge to listen on ${port} (output: ${out})`, () => {
    if (exited) throw new Error(`etcd-edge exited: ${out}`);
    return out.includes("listening on");
  }, 30_000);
  const scheme = o.tls ? "https" : "http";
  return { addr: `127.0.0.1:${port}`, port, url: `${scheme}://127.0.0.1:${port}`, process: proc, output: () => out, stop };
}

/** Runs the bin to completion (for flag errors and help): exit code and output. */
export function runEdge(args: string[], timeoutMs = 20_000): Promise<{ code: number | null; out: string }> {
  const [cmd, pre] = runtimeCommand();
  return new Promise((resolve) => {
    const proc = spawn(cmd, [...pre, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    proc.stdout!.on("data", (d: Buffer) => { out += d.toString(); });
    proc.stderr!.on("data", (d: Buffer) => { out += d.toString(); });
    const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
    proc.on("exit", (code) => { clearTimeout(timer); resolve({ code, out }); });
  });
}
