/**
 * `--ui`: a small key browser the proxy serves itself at /ui/. The page is static; its script
 * (src/ui/app.ts, bundled by scripts/build-ui.js into dist/ui/app.js at build time) calls this same
 * proxy over Connect: Range for the keys, etcdedge.v1.Edge/Watch for live updates. Same origin, so it
 * needs no CORS.
 */
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { Hono } from "hono";

/**
 * Where the bundle is: dist/ui/ beside the compiled dist/src/, or, when src/ runs as TypeScript (tsx in
 * tests, `npm run dev`), the dist/ui/ of a build at the repository root.
 */
const BUNDLE_CANDIDATES = ["../../ui/app.js", "../../dist/ui/app.js"].map((rel) => new URL(rel, import.meta.url));

export async function loadUiBundle(): Promise<string> {
  for (const url of BUNDLE_CANDIDATES) {
    try {
      return await readFile(url, "utf8");
    } catch {
      // not in this layout; try the next
    }
  }
  throw new Error(`--ui: the UI bundle is missing (looked for ${BUNDLE_CANDIDATES.map((u) => fileURLToPath(u)).join(", ")}); run npm run build`);
}

/**
 * The page may load only its own script and talk only to this proxy: a key's value is shown as text,
 * never as markup, and the policy makes sure nothing else runs even if that slipped.
 */
const SECURITY_HEADERS = {
  "content-security-policy": "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-cache",
};

export function uiRoutes(bundle: string): Hono {
  const app = new Hono();
  app.get("/ui", (c) => c.redirect("/ui/", 301));
  app.get("/ui/", (c) => c.body(PAGE, 200, { ...SECURITY_HEADERS, "content-type": "text/html; charset=utf-8" }));
  app.get("/ui/app.js", (c) => c.body(bundle, 200, { ...SECURITY_HEADERS, "content-type": "text/javascript; charset=utf-8" }));
  return app;
}

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>etcd-edge: keys</title>
<link rel="icon" href="data:,">
<style>
  :root { --fg: #1d2330; --muted: #6b7385; --line: #dde1e8; --accent: #2f6fde; --flash: #fff3b0; --bg: #f6f7f9; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
  header { display: flex; align-items: center; gap: 16px; padding: 10px 18px; background: #fff; border-bottom: 1px solid var(--line); }
  header h1 { font-size: 16px; margin: 0; }
  header form { display: flex; gap: 6px; flex: 1; }
  header input { flex: 1; max-width: 420px; padding: 5px 8px; font: 13px ui-monospace, monospace; border: 1px solid var(--line); border-radius: 4px; }
  header button { padding: 5px 12px; border: 1px solid var(--accent); background: var(--accent); color: #fff; border-radius: 4px; cursor: pointer; }
  #status { font-size: 12px; color: var(--muted); white-space: nowrap; }
  #status.live::before { content: "●"; color: #1a9c4a; margin-right: 5px; }
  #status.error { color: #b3261e; }
  main { display: grid; grid-template-columns: minmax(260px, 38%) 1fr; gap: 14px; padding: 14px 18px; }
  section { background: #fff; border: 1px solid var(--line); border-radius: 6px; overflow: hidden; }
  section h2 { margin: 0; padding: 8px 12px; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); border-bottom: 1px solid var(--line); }
  section h2 code { text-transform: none; letter-spacing: 0; font: 600 12px ui-monospace, monospace; color: var(--fg); }
  #keys { list-style: none; margin: 0; padding: 0; max-height: 70vh; overflow: auto; }
  #keys li { display: flex; justify-content: space-between; gap: 10px; padding: 6px 12px; border-bottom: 1px solid #f0f2f5; cursor: pointer; font: 13px ui-monospace, monospace; }
  #keys li:hover { background: #f3f6fc; }
  #keys li.selected { background: #e7efff; }
  #keys li.flash { animation: flash 1.2s ease-out; }
  #keys li .rev { color: var(--muted); font-size: 11px; }
  @keyframes flash { from { background: var(--flash); } }
  #value { padding: 12px; }
  #value .key { font: 600 14px ui-monospace, monospace; word-break: break-all; }
  #value pre { margin: 10px 0; padding: 10px; background: var(--bg); border-radius: 4px; white-space: pre-wrap; word-break: break-all; font: 13px ui-monospace, monospace; }
  #value dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 0; font-size: 12px; color: var(--muted); }
  #value dd { margin: 0; font-family: ui-monospace, monospace; color: var(--fg); }
  #events { list-style: none; margin: 0; padding: 0; font: 12px ui-monospace, monospace; max-height: 30vh; overflow: auto; }
  #events li { padding: 4px 12px; border-bottom: 1px solid #f0f2f5; }
  #events .PUT { color: #1a6d3a; } #events .DELETE { color: #b3261e; }
  .empty { padding: 12px; color: var(--muted); }
</style>
</head>
<body>
<header>
  <h1>etcd-edge</h1>
  <form id="prefix-form"><input id="prefix" name="prefix" placeholder="key prefix (empty: all keys)" autocomplete="off" spellcheck="false"><button>Show</button></form>
  <span id="status">connecting…</span>
</header>
<main>
  <section><h2 id="keys-title">Keys</h2><ul id="keys"></ul></section>
  <div>
    <section><h2>Value</h2><div id="value"><div class="empty">Select a key.</div></div></section>
    <section style="margin-top:14px"><h2>Live events</h2><ul id="events"></ul></section>
  </div>
</main>
<script type="module" src="./app.js"></script>
</body>
</html>
`;
