/**
 * A real browser on another origin: Debian's chromium loads test/browser/page.ts from a static server on
 * its own port and calls the proxy over gRPC-Web and Connect (connect-web, fetch): put, get, txn, an etcd
 * error whose status must cross CORS, and a live watch over the server-streaming Edge/Watch that receives
 * a write made by etcdctl straight to etcd. A page from an origin the proxy does not allow gets nothing.
 */
import t from "tap";
import type { Outcome } from "./page.js";
import { bundle, launchChromium, serveStatic } from "../helpers/chromium.js";
import { startEtcd } from "../helpers/etcd.js";
import { etcdctl } from "../helpers/etcdctl.js";
import { startEdge } from "../helpers/proxy.js";

const PAGE_HTML = `<!doctype html><meta charset="utf-8"><title>etcd-edge browser test</title><pre id="out"></pre><script type="module" src="/page.js"></script>`;
const files: Record<string, [string, string]> = {
  "/page.html": ["text/html; charset=utf-8", PAGE_HTML],
  "/page.js": ["text/javascript; charset=utf-8", await bundle("test/browser/page.ts")],
};

const etcd = await startEtcd(t);
const allowedSite = await serveStatic(t, files);
const otherSite = await serveStatic(t, files);
const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`, `--cors-allowed-origins=${allowedSite.origin}`]);
const browser = await launchChromium(t);

async function openPage(origin: string, prefix: string) {
  const page = await browser.newPage();
  const logs: string[] = [];
  page.on("console", (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => logs.push(`pageerror: ${e.message}`));
  await page.goto(`${origin}/page.html?proxy=${encodeURIComponent(edge.url)}&prefix=${encodeURIComponent(prefix)}`);
  const outcome = (protocol: string) => page.evaluate((p) => window.edgeTest[p], protocol) as Promise<Outcome | undefined>;
  return { page, logs, outcome };
}

t.test(`a page on ${allowedSite.origin} uses the proxy on ${edge.url}`, async (t) => {
  const { page, logs, outcome } = await openPage(allowedSite.origin, "browser/");
  t.teardown(() => page.close());
  for (const protocol of ["grpc-web", "connect"]) {
    await page.waitForFunction((p) => window.edgeTest?.[p]?.watching || window.edgeTest?.[p]?.done, protocol, { timeout: 20_000 })
      .catch((err: Error) => { throw new Error(`${protocol}: ${err.message}\npage console:\n${logs.join("\n")}`); });
    const before = (await outcome(protocol))!;
    t.notOk(before.error, `${protocol}: no error before the watch (${before.error})`);
    t.equal(before.watching, true, `${protocol}: the watch is created`);
    // Written past the proxy, straight to etcd: the event must come to the page through the live watch.
    const put = await etcdctl(etcd.endpoint, ["put", `browser/${protocol}/live/x`, `hello ${protocol}`]);
    t.equal(put.code, 0, put.stderr);
    await page.waitForFunction((p) => window.edgeTest[p]!.done, protocol, { timeout: 20_000 });
    const o = (await outcome(protocol))!;
    t.equal(o.error, undefined, `${protocol}: no error`);
    t.equal(o.get, "1", `${protocol}: put then get`);
    t.equal(o.txnSucceeded, true, `${protocol}: txn compare-and-swap succeeded`);
    t.equal(o.afterTxn, "2", `${protocol}: the txn's put is visible`);
    t.equal(o.emptyKeyError, "InvalidArgument: etcdserver: key is not provided", `${protocol}: etcd's error code and message reach the page`);
    t.same(o.event, { type: "PUT", key: `browser/${protocol}/live/x`, value: `hello ${protocol}` }, `${protocol}: the live watch event`);
  }
  t.equal((await etcdctl(etcd.endpoint, ["get", "browser/connect/a", "--print-value-only"])).stdout.trim(), "2", "the page's writes reached etcd");
});

t.test(`a page on ${otherSite.origin} (not allowed) is refused by the browser`, async (t) => {
  const { page, outcome } = await openPage(otherSite.origin, "refused/");
  t.teardown(() => page.close());
  for (const protocol of ["grpc-web", "connect"]) {
    await page.waitForFunction((p) => window.edgeTest?.[p]?.done, protocol, { timeout: 20_000 });
    const o = (await outcome(protocol))!;
    t.match(o.error, /fetch/i, `${protocol}: the first call fails (CORS): ${o.error}`);
    t.equal(o.get, undefined, `${protocol}: nothing read`);
  }
  const written = await etcdctl(etcd.endpoint, ["get", "refused/", "--prefix", "--keys-only"]);
  t.equal(written.code, 0, written.stderr);
  t.equal(written.stdout.trim(), "", "the preflight stopped the writes: nothing reached etcd");
});
