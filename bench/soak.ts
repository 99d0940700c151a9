/**
 * `npm run bench -- soak [--seconds=600]`: the long form of test/soak/soak.test.ts (45 s in CI), 10 minutes
 * of mixed load against etcd-edge in front of a fresh etcd. Prints its figures (RSS and open fds after the
 * warm-up and at the end, the load it ran, the gauges before and after) and exits with the test's status.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

export async function main(args: string[]): Promise<number> {
  const seconds = Number(args.find((a) => a.startsWith("--seconds="))?.slice("--seconds=".length) ?? 600);
  if (!(seconds > 0)) throw new Error(`--seconds must be a positive number, not ${seconds}`);
  return runTestFile("test/soak/soak.test.ts", { SOAK_SECONDS: String(seconds) }, (line) => line.includes("# soak:") || /^\s*(not )?ok \d/.test(line));
}

/**
 * Runs one tap test file under this Node (through tsx, no tap runner: no per-file timeout) with `env`
 * added; its output goes to stderr as it comes, and the lines `keep` picks are printed again at the end as
 * the figures. Resolves with its exit code.
 */
export function runTestFile(file: string, env: Record<string, string>, keep: (line: string) => boolean): Promise<number> {
  const started = Date.now();
  process.stderr.write(`[bench] ${file} with ${Object.entries(env).map(([k, v]) => `${k}=${v}`).join(" ")}\n`);
  const child = spawn(process.execPath, ["--import", "tsx", file], { cwd: ROOT, env: { ...process.env, ...env, TAP_TIMEOUT: "0" }, stdio: ["ignore", "pipe", "inherit"] });
  const kept: string[] = [];
  let rest = "";
  child.stdout.on("data", (d: Buffer) => {
    process.stderr.write(d);
    const lines = (rest + d.toString()).split("\n");
    rest = lines.pop()!;
    for (const l of lines) if (keep(l)) kept.push(l.trim());
  });
  return new Promise((resolve) => {
    child.on("exit", (code) => {
      if (keep(rest)) kept.push(rest.trim());
      process.stdout.write(`## ${file} (${Object.entries(env).map(([k, v]) => `${k}=${v}`).join(" ")}, ${((Date.now() - started) / 1000).toFixed(0)} s, exit ${code})\n\n${kept.map((l) => `    ${l}`).join("\n")}\n\n`);
      resolve(code ?? 1);
    });
  });
}
