/**
 * Everything the proxy needs from the runtime it runs on, in one place. Node, Deno and Bun all provide
 * these through their Node compatibility layers; runtime-specific workarounds go here and nowhere else.
 */
import { hostname as osHostname } from "node:os";

export const runtime = {
  name: detect(),
  argv: (): string[] => process.argv.slice(2),
  hostname: (): string => osHostname(),
  exit: (code: number): never => process.exit(code),
  onShutdown(fn: (signal: string) => void): void {
    for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => fn(sig));
  },
  stderr: (line: string): void => void process.stderr.write(line + "\n"),
  stdout: (line: string): void => void process.stdout.write(line + "\n"),
};

function detect(): "node" | "deno" | "bun" {
  const g = globalThis as { Deno?: unknown; Bun?: unknown };
  if (g.Bun !== undefined) return "bun";
  if (g.Deno !== undefined) return "deno";
  return "node";
}
