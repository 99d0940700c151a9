/**
 * The seams of src/ (README, Architecture): which folder may import which, the size of a file, and the
 * one line each folder's main file opens with. Fails on any import against the directions, so the
 * layering cannot erode unnoticed.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import t from "tap";

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), "../../src");
const MAX_LINES = 300;

/** A file's layer: its folder under src/ (upstream/ split in its five parts), or the root file's name. */
function layerOf(file: string): string {
  const parts = relative(SRC, file).split("/");
  if (parts.length === 1) return parts[0]!.replace(/\.ts$/, "");
  if (parts[0] === "upstream") return `upstream/${parts[1]}`;
  return parts[0]!;
}

const UPSTREAM = ["upstream/client", "upstream/cache", "upstream/kv", "upstream/watch", "upstream/lease"];

/** Layer → the layers it may import besides itself. */
const ALLOWED: Record<string, readonly string[]> = {
  main: ["config", "proxy", "runtime"],
  proxy: ["config", "runtime", "wire", "listener", "services", "http", "observe", ...UPSTREAM],
  config: [],
  runtime: [],
  wire: [],
  observe: [],
  listener: ["services", "http", "wire", "observe", "runtime"],
  http: ["services", "wire", "observe"],
  services: ["wire", "observe", ...UPSTREAM],
  "upstream/client": ["wire", "runtime", "observe"],
  // The watch cache sits below the KV and watch paths that answer from it.
  "upstream/cache": ["upstream/client", "wire", "runtime", "observe"],
  "upstream/kv": ["upstream/client", "upstream/cache", "wire", "runtime", "observe"],
  "upstream/watch": ["upstream/client", "upstream/cache", "wire", "runtime", "observe"],
  "upstream/lease": ["upstream/client", "wire", "runtime", "observe"],
  // The browser bundles (built by scripts/build-ui.js): the UI on the browser client, nothing server-side.
  ui: ["browser"],
  browser: [],
};

/** The main file of each folder: it opens with one line on the folder's role and what it may import. */
const MAIN_FILES = [
  "config/options.ts", "runtime/runtime.ts", "wire/frame.ts", "observe/metrics.ts", "listener/route.ts",
  "listener/fast/unary.ts", "services/routes.ts", "http/app.ts", "http/gateway/paths.ts",
  "upstream/client/upstream.ts", "upstream/cache/watch-cache.ts", "upstream/kv/coalesced-kv.ts", "upstream/watch/watch-hub.ts", "upstream/lease/lease-hub.ts",
];

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith(".ts") ? [p] : [];
  });
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;

function importsOf(text: string): string[] {
  return [...text.matchAll(IMPORT)].map((m) => (m[1] ?? m[2])!);
}

const files = sources(SRC);

t.test("imports run one way between the folders of src/", async (t) => {
  const wrong: string[] = [];
  for (const file of files) {
    const from = layerOf(file);
    const allowed = ALLOWED[from];
    if (!allowed) {
      wrong.push(`${relative(SRC, file)}: folder "${from}" has no rule in this test`);
      continue;
    }
    for (const spec of importsOf(readFileSync(file, "utf8"))) {
      if (!spec.startsWith(".")) continue;
      const target = resolve(dirname(file), spec).replace(/\.js$/, ".ts");
      if (!target.startsWith(SRC + "/")) continue; // gen/ and the like
      const to = layerOf(target);
      if (to !== from && !allowed.includes(to)) wrong.push(`${relative(SRC, file)} → ${relative(SRC, target)} (${from} → ${to})`);
    }
  }
  t.same(wrong, [], "no import against the directions");
});

t.test(`no src file over ${MAX_LINES} lines`, async (t) => {
  const long = files.map((f) => [relative(SRC, f), readFileSync(f, "utf8").split("\n").length] as const).filter(([, n]) => n > MAX_LINES);
  t.same(long, [], "every file small enough to read in one go");
});

t.test("each folder's main file says its role and what it may import", async (t) => {
  for (const main of MAIN_FILES) {
    const head = readFileSync(join(SRC, main), "utf8").split("*/")[0]!;
    t.match(head, /^\/\*\*/, `${main} opens with a comment`);
    t.match(head, /[Ii]mports?[^\n]*:/, `${main} says what it may import`);
  }
});

t.test("the checker itself sees a wrong arrow", async (t) => {
  t.same(importsOf(`import { x } from "../listener/route.js";\nexport { y } from "./z.js";\nconst m = await import("../upstream/a.js");`), ["../listener/route.js", "./z.js", "../upstream/a.js"]);
  t.notOk(ALLOWED["services"]!.includes("listener"), "services may not import listener");
  t.notOk(ALLOWED["upstream/kv"]!.includes("upstream/watch"), "kv may not import watch");
});
