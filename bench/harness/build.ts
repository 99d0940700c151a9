/**
 * Makes sure what is measured is what the source says: rebuilds dist/ (the proxy as users run it) when a
 * file under src/ or gen/ is newer than it, and bundles the generator and the ceiling servers into plain
 * JS (no TypeScript loader in a measured process).
 */
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { build } from "esbuild";

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

function mtimeOr0(path: string): number {
  try { return statSync(path).mtimeMs; } catch { return 0; }
}

/**
 * Returns what it did, for the log; `stale` when the build failed but an older dist/ exists (source being
 * edited): the run goes on and results.md says so, rather than measuring nothing.
 */
export function ensureDist(root: string): { message: string; stale: boolean } {
  const built = mtimeOr0(join(root, "dist", "src", "main.js"));
  const source = Math.max(newestMtime(join(root, "src")), newestMtime(join(root, "gen")));
  if (built >= source) return { message: "dist/ is up to date", stale: false };
  const b = spawnSync("npm", ["run", "build", "--silent"], { cwd: root, encoding: "utf8" });
  if (b.status === 0) return { message: "rebuilt dist/ (it was older than src/)", stale: false };
  const why = `${b.stdout}${b.stderr}`.trim().split("\n").slice(0, 5).join("; ");
  if (built === 0) throw new Error(`npm run build failed and there is no dist/ to measure: ${why}`);
  return { message: `npm run build failed, so etcd-edge ran from an older dist/ than src/ (${why})`, stale: true };
}

export const BUNDLES = {
  generator: "load/generator.ts", passthrough: "ceilings/passthrough.ts", "static-range": "ceilings/static-range.ts", "bare-h2": "ceilings/bare-h2.ts",
} as const;

export async function bundleBench(benchDir: string, outDir: string): Promise<void> {
  await build({
    entryPoints: Object.fromEntries(Object.entries(BUNDLES).map(([name, file]) => [name, join(benchDir, file)])),
    outdir: outDir,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    // node_modules resolve from the repository at run time (outDir is inside it).
    packages: "external",
    logLevel: "warning",
  });
}
