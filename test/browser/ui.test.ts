/**
 * --ui in chromium: the page lists the keys under a prefix, shows the selected value, and follows etcd
 * live through the server-streaming watch (writes made by etcdctl straight to etcd appear, change and
 * vanish without a reload). A screenshot is left in the temp directory for a person to look at. Without
 * --ui there is no page. Needs dist/ui/app.js (npm run build; npm test builds first).
 */
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { launchChromium } from "../helpers/chromium.js";
import { startEtcd } from "../helpers/etcd.js";
import { etcdctl } from "../helpers/etcdctl.js";
import { startEdge } from "../helpers/proxy.js";

const SCREENSHOT = join(tmpdir(), "etcd-edge-ui.png");

const etcd = await startEtcd(t);
for (const [k, v] of [["ui/alpha", "first"], ["ui/beta", '{"replicas": 3, "image": "nginx:1.27"}'], ["ui/config/limits", "cpu=2 mem=4Gi"], ["other/x", "not under the prefix"]]) {
  await etcdctl(etcd.endpoint, ["put", k!, v!]);
}
const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`, "--ui"]);

t.test("off by default", async (t) => {
  const plain = await startEdge(t, [`--endpoints=${etcd.endpoint}`]);
  t.equal((await fetch(`${plain.url}/ui/`)).status, 404);
  t.equal((await fetch(`${plain.url}/ui/app.js`)).status, 404);
});

t.test("the key browser lists, shows and follows etcd live", async (t) => {
  const browser = await launchChromium(t);
  const page = await browser.newPage();
  const problems: string[] = [];
  page.on("console", (m) => { if (m.type() === "error" || m.type() === "warning") problems.push(m.text()); });
  page.on("pageerror", (e) => problems.push(e.message));
  const listed = () => page.$$eval("#keys li[data-key]", (lis) => lis.map((li) => (li as HTMLElement).dataset["key"]));
  const shown = () => page.textContent("#value pre");

  await page.goto(`${edge.url}/ui/?prefix=ui/`);
  await page.waitForSelector("#status.live", { timeout: 20_000 });
  t.same(await listed(), ["ui/alpha", "ui/beta", "ui/config/limits"], "the keys under ui/, sorted, and nothing else");
  t.match(await page.textContent("#keys-title"), /Keys under "ui\/" \(3\)/);

  await page.click('#keys li[data-key="ui/beta"]');
  t.equal(await shown(), '{"replicas": 3, "image": "nginx:1.27"}', "the selected value, as text");
  t.match(await page.textContent("#value .key"), "ui/beta");

  // Written straight to etcd: only the live watch can bring these to the page.
  await etcdctl(etcd.endpoint, ["put", "ui/beta", '{"replicas": 5, "image": "nginx:1.27"}']);
  await page.waitForFunction(() => document.querySelector("#value pre")?.textContent?.includes('"replicas": 5'), undefined, { timeout: 20_000 });
  t.pass("the selected value updated live");
  await etcdctl(etcd.endpoint, ["put", "ui/gamma", "<b>not markup</b>"]);
  await etcdctl(etcd.endpoint, ["del", "ui/alpha"]);
  await etcdctl(etcd.endpoint, ["put", "other/y", "still not under the prefix"]);
  await page.waitForFunction(() => {
    const keys = [...document.querySelectorAll<HTMLElement>("#keys li[data-key]")].map((li) => li.dataset["key"]);
    return keys.includes("ui/gamma") && !keys.includes("ui/alpha");
  }, undefined, { timeout: 20_000 });
  t.same(await listed(), ["ui/beta", "ui/config/limits", "ui/gamma"], "a new key appears, a deleted one goes");
  await page.click('#keys li[data-key="ui/gamma"]');
  t.equal(await shown(), "<b>not markup</b>", "a value is shown as text, never as markup");
  t.equal(await page.$$eval("#value b", (b) => b.length), 0);
  const events = await page.$$eval("#events li", (lis) => lis.map((li) => li.textContent));
  t.match(events[0], /^PUT ui\/gamma|^DELETE ui\/alpha/, "the event log shows the latest events first");
  t.ok(events.some((e) => e?.startsWith("DELETE ui/alpha")), "the delete is in the log");
  t.notOk(events.some((e) => e?.includes("other/")), "no events from outside the prefix");

  await page.click('#keys li[data-key="ui/beta"]');
  await page.screenshot({ path: SCREENSHOT });
  t.comment(`screenshot: ${SCREENSHOT}`);
  t.same(problems, [], "no errors in the page's console (CSP included)");
});
