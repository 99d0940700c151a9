/**
 * runtime/: the only runtime-specific code (Node, Deno, Bun). Imports: no other src/ folder (a leaf).
 *
 * Everything the proxy needs from the runtime it runs on, in one place. Node, Deno and Bun all provide
 * these through their Node compatibility layers; runtime-specific workarounds go here and nowhere else
 * (deno.ts, bun.ts), chosen once by the runtime's name.
 */
import type * as http from "node:http";
import type * as http2 from "node:http2";
import { hostname as osHostname } from "node:os";
import { bunUnsupported } from "./bun.js";
import { splicedHandoff } from "./deno.js";
import { directHandoff, type Http1Handoff } from "./http1-handoff.js";
import { compatStreamsAfter, type StreamTaker } from "./http2-compat.js";

export type { Http1Handoff } from "./http1-handoff.js";
export type { StreamTaker } from "./http2-compat.js";

type RuntimeName = "node" | "deno" | "bun";

const name = detect();

/**
 * How often a proxy started by npm checks that its parent is still there (onShutdown): noticed within a
 * second, far inside any supervisor's stop timeout, for one getppid() a second.
 */
const PARENT_CHECK_MS = 1_000;

export const runtime = {
  name,
  /** "deno 2.9.6": for the start line and bug reports. */
  version: (): string => runtimeVersion(),
  argv: (): string[] => process.argv.slice(2),
  hostname: (): string => osHostname(),
  exit: (code: number): never => process.exit(code),
  /**
   * `fn` once, on the first SIGINT or SIGTERM; later ones are ignored, as the shutdown has its own bound (a
   * terminal's Ctrl-C reaches both `npm run dev` and the proxy it started, which then passes it on too).
   * Started by npm (`npx etcd-edge`, `npm start`, `npm run dev`), also when the process that started it is
   * gone: npm passes a supervisor's SIGTERM to the `sh -c` it runs the command in, and dash (Debian's sh)
   * dies of it without passing it on, which would leave the proxy running with no one to stop it.
   */
  onShutdown(fn: (signal: string) => void): void {
    let fired = false;
    const once = (why: string) => {
      if (fired) return;
      fired = true;
      clearInterval(parentCheck);
      fn(why);
    };
    for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => once(sig));
    const parent = process.ppid;
    const parentCheck = process.env["npm_command"] === undefined ? undefined : setInterval(() => {
      if (process.ppid !== parent) once("the process that started etcd-edge is gone");
    }, PARENT_CHECK_MS);
    parentCheck?.unref?.();
  },
  stderr: (line: string): void => void process.stderr.write(line + "\n"),
  stdout: (line: string): void => void process.stdout.write(line + "\n"),
  /** Throws with the reason when this runtime version cannot run the listener (Bun < 1.4). */
  assertSupported(): void {
    const reason = name === "bun" ? bunUnsupported(runtimeVersion().replace(/^bun /, "")) : undefined;
    if (reason) throw new Error(reason);
  },
  /**
   * How sniffed cleartext HTTP/1.1 connections reach `server`: handed over directly on Node and Bun,
   * spliced to a private loopback listener on Deno (deno.ts says why).
   */
  http1Handoff: (server: http.Server): Promise<Http1Handoff> => (name === "deno" ? splicedHandoff(server) : Promise.resolve(directHandoff(server))),
  /**
   * Lets `take` have each HTTP/2 stream of `server` before the compat layer turns it into a request (a
   * measured saving on the hottest path); what it declines goes on as before. False where the runtime's
   * node:http2 is not shaped for it (http2-compat.ts), and then every stream takes the compat path.
   */
  streamsFirst: (server: http2.Http2Server | http2.Http2SecureServer, take: StreamTaker): boolean => compatStreamsAfter(server, take),
};

function detect(): RuntimeName {
  const g = globalThis as { Deno?: unknown; Bun?: unknown };
  if (g.Bun !== undefined) return "bun";
  if (g.Deno !== undefined) return "deno";
  return "node";
}

function runtimeVersion(): string {
  const g = globalThis as { Deno?: { version?: { deno?: string } }; Bun?: { version?: string } };
  if (name === "bun") return `bun ${g.Bun?.version ?? "?"}`;
  if (name === "deno") return `deno ${g.Deno?.version?.deno ?? "?"}`;
  return `node ${process.versions.node}`;
}
