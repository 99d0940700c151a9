/**
 * Debian's chromium (/usr/bin/chromium; .ci/run installs it), headless through playwright-core, with a
 * fresh profile per test and nothing running in the background that could reach the network. Closed and
 * its profile removed when the test ends. Also: bundling a TypeScript page with esbuild, and a tiny static
 * server for it on its own port (its own origin).
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { chromium, type BrowserContext } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";

const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

interface Tap { teardown(fn: () => unknown): void }

export async function launchChromium(t: Tap): Promise<BrowserContext> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: apt-get install -y chromium (.ci/run does this)`);
  // launchPersistentContext is playwright's way to pass --user-data-dir: a fresh directory each time.
  const profile = mkdtempSync(join(tmpdir(), "etcd-edge-chromium-"));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1100, height: 680 } });
  t.teardown(async () => {
    await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  });
  return context;
}

/** `entry` (a path under the repository) and everything it imports, as one browser script. */
export async function bundle(entry: string): Promise<string> {
  const root = fileURLToPath(new URL("../..", import.meta.url));
  const out = await build({ absWorkingDir: root, entryPoints: [entry], bundle: true, write: false, format: "esm", platform: "browser", target: ["es2020"], logLevel: "warning" });
  return out.outputFiles[0]!.text;
}

/** Serves `files` (path → [content-type, body]) on a free loopback port: its own origin. */
export async function serveStatic(t: Tap, files: Record<string, [string, string]>): Promise<{ origin: string; server: Server }> {
  const server = createServer((req, res) => {
    const file = files[(req.url ?? "/").split("?")[0]!];
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": file[0], "cache-control": "no-store" }).end(file[1]);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.teardown(() => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }));
  return { origin: `http://127.0.0.1:${(server.address() as { port: number }).port}`, server };
}
