/**
 * The differential suites again with etcd 3.5 (Kubernetes' etcd; Debian 13's binaries, fetched by
 * ../shared/tools/etcd-3.5.sh) behind the proxy and beside it: every etcd and etcdctl these files start is
 * 3.5's. The rest of the suite runs against Debian 12's etcd 3.4. Each file runs as its own tap process,
 * as tap runs it, and must pass whole.
 *
 * Not here: the JSON gateway's byte-for-byte comparison. Debian 13 builds etcd 3.5 with grpc-gateway v2
 * (protojson output, whose spacing protobuf-go deliberately varies, and v2's error bodies); the 3.5
 * release builds Kubernetes runs use grpc-gateway v1.16, as 3.4 does, so 3.4's gateway is the reference.
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import t from "tap";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const FILES = [
  "test/conformance/grpc-js.test.ts",
  "test/e2e/drop-in.test.ts",
  "test/protocols/kv-watch.test.ts",
  "test/e2e/etcdctl-kv.test.ts",
  "test/cache/watch-cache.test.ts",
  "test/cache/range-differential.test.ts",
];

/** The folder of etcd 3.5's binaries: $ETCD35_DIR (.ci/run sets it), else the fetch script's cache. */
function etcd35Dir(): string {
  const dir = process.env["ETCD35_DIR"] ?? execFileSync("bash", [join(ROOT, "../shared/tools/etcd-3.5.sh")], { encoding: "utf8" }).trim();
  if (!existsSync(join(dir, "etcd"))) throw new Error(`no etcd in ${dir}`);
  return dir;
}

const dir = etcd35Dir();
const version = execFileSync(join(dir, "etcd"), ["--version"], { encoding: "utf8" });
t.match(version, /etcd Version: 3\.5\./, "these runs use etcd 3.5");

for (const file of FILES) {
  t.test(`${file} against etcd 3.5`, async (t) => {
    const { code, out } = await new Promise<{ code: number | null; out: string }>((done) => {
      const proc = spawn(process.execPath, ["--import=tsx", join(ROOT, file)], {
        cwd: ROOT,
        env: { ...process.env, PATH: `${dir}:${process.env["PATH"]}`, TAP_CHILD_ID: "", TAP: "" },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      proc.stdout.on("data", (d: Buffer) => { out += d.toString(); });
      proc.stderr.on("data", (d: Buffer) => { out += d.toString(); });
      proc.on("exit", (c) => done({ code: c, out }));
    });
    const failures = out.split("\n").filter((l) => /^\s*not ok /.test(l));
    t.same(failures, [], "no failed assertion");
    t.equal(code, 0, code === 0 ? "passed" : out.slice(-3000));
  });
}
