/** gen/ is committed; it must be exactly what `npm run generate` makes from proto/ today. */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import t from "tap";

const root = new URL("../..", import.meta.url).pathname;

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

t.test("gen/ matches proto/", async (t) => {
  const out = mkdtempSync(join(tmpdir(), "etcd-edge-gen-"));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const template = JSON.stringify({ version: "v2", plugins: [{ local: join(root, "node_modules/.bin/protoc-gen-es"), out, opt: ["target=ts", "import_extension=js"] }] });
  execFileSync(join(root, "node_modules/.bin/buf"), ["generate", "--template", template], { cwd: root });
  const fresh = files(out).map((p) => relative(out, p)).sort();
  const committed = files(join(root, "gen")).map((p) => relative(join(root, "gen"), p)).sort();
  t.same(committed, fresh, "the same files");
  for (const f of fresh) {
    t.equal(readFileSync(join(root, "gen", f), "utf8"), readFileSync(join(out, f), "utf8"), `gen/${f} is up to date (run npm run generate)`);
  }
});
