/**
 * --endpoints-auto-sync-interval (src/upstream/client/endpoint-sync.ts) with a scripted member list: which
 * members' URLs become endpoints (clientv3's Sync rules), how the list is replaced (Upstream.setEndpoints),
 * and that a failed or empty answer keeps the list. Endpoints here are never dialled.
 */
import { create } from "@bufbuild/protobuf";
import t from "tap";
import { MemberSchema, type Member } from "../../gen/etcdserverpb/rpc_pb.js";
import { EndpointSync, endpointOfUrl, endpointsOfMembers } from "../../src/upstream/client/endpoint-sync.js";
import { Upstream } from "../../src/upstream/client/upstream.js";
import { waitFor } from "../helpers/ports.js";

const member = (name: string, clientURLs: string[], isLearner = false): Member => create(MemberSchema, { name, clientURLs, isLearner });
const upstream = (...urls: string[]) => {
  const up = new Upstream({ endpoints: urls.map((url) => ({ url, tls: url.startsWith("https:") })), tls: undefined, maxSendBytes: 1 << 20, maxRecvBytes: 1 << 20, keepAliveTimeMs: 0, keepAliveTimeoutMs: 20_000 });
  t.teardown(() => up.close());
  return up;
};
const urls = (up: Upstream) => up.endpoints.map((e) => e.url);

t.test("client URLs of started voting members, in member order, once each (clientv3 Sync)", async (t) => {
  t.same(endpointsOfMembers([
    member("a", ["http://10.0.0.1:2379", "http://10.0.0.1:22379"]),
    member("", ["http://10.0.0.9:2379"]), // added, not started: no name
    member("l", ["http://10.0.0.5:2379"], true), // a learner
    member("b", ["https://etcd-b.example:2379", "http://10.0.0.1:2379"]),
    member("c", ["unix://sock:0", "not a url"]),
  ]), [
    { url: "http://10.0.0.1:2379", tls: false },
    { url: "http://10.0.0.1:22379", tls: false },
    { url: "https://etcd-b.example:2379", tls: true },
  ]);
  t.same(endpointOfUrl("https://h"), { url: "https://h:443", tls: true }, "a URL without a port gets its scheme's");
  t.same(endpointOfUrl("http://[::1]:2379/"), { url: "http://[::1]:2379", tls: false });
  t.equal(endpointOfUrl("127.0.0.1:2379"), undefined, "a member's client URLs always carry a scheme");
});

t.test("a sync replaces the list; kept endpoints keep their state", async (t) => {
  const up = upstream("http://127.0.0.1:1", "http://127.0.0.1:2");
  const kept = up.endpoints[1]!;
  kept.up = false;
  let members = [member("b", ["http://127.0.0.1:2"]), member("c", ["http://127.0.0.1:3"])];
  const sync = new EndpointSync(up, { intervalMs: 60_000, members: async () => members });
  t.same(await sync.syncOnce(), ["http://127.0.0.1:2", "http://127.0.0.1:3"], "1 removed, 3 added");
  t.equal(up.endpoints[0], kept, "the same endpoint object (sessions, up/down) for a URL still listed");
  t.equal(kept.up, false);
  t.equal(sync.changes, 1);
  t.same(await sync.syncOnce(), ["http://127.0.0.1:2", "http://127.0.0.1:3"]);
  t.equal(sync.changes, 1, "an unchanged member list changes nothing");

  members = [];
  t.equal(await sync.syncOnce(), undefined, "no member with a URL: the list stays");
  members = [member("", ["http://127.0.0.1:4"]), member("l", ["http://127.0.0.1:5"], true)];
  t.equal(await sync.syncOnce(), undefined, "only unstarted members and learners: the list stays");
  t.same(urls(up), ["http://127.0.0.1:2", "http://127.0.0.1:3"]);

  const failing = new EndpointSync(up, { intervalMs: 60_000, members: async () => { throw new Error("etcdserver: request timed out"); } });
  t.equal(await failing.syncOnce(), undefined, "etcd did not answer: the list stays");
  t.same(urls(up), ["http://127.0.0.1:2", "http://127.0.0.1:3"]);
});

t.test("every interval, without a restart: members added are used, members removed are dropped", async (t) => {
  const up = upstream("http://127.0.0.1:1");
  let members = [member("a", ["http://127.0.0.1:1"])];
  let asked = 0;
  const sync = new EndpointSync(up, { intervalMs: 20, members: async () => { asked++; return members; } });
  sync.start();
  t.teardown(() => sync.close());
  await waitFor("a first sync", () => asked >= 1);
  members = [member("a", ["http://127.0.0.1:1"]), member("b", ["http://127.0.0.1:2"])];
  await waitFor("b added", () => urls(up).join() === "http://127.0.0.1:1,http://127.0.0.1:2");
  members = [member("b", ["http://127.0.0.1:2"])];
  await waitFor("a removed", () => urls(up).join() === "http://127.0.0.1:2");
  sync.close();
  const after = asked;
  await new Promise((r) => setTimeout(r, 100));
  t.ok(asked <= after + 1, "close stops the syncs");
});

t.test("setEndpoints: calls keep going to the current endpoint when it stays; duplicates and an empty list", async (t) => {
  const up = upstream("http://127.0.0.1:1", "http://127.0.0.1:2");
  (up as unknown as { current: number }).current = 1;
  up.setEndpoints([{ url: "http://127.0.0.1:3", tls: false }, { url: "http://127.0.0.1:2", tls: false }, { url: "http://127.0.0.1:2", tls: false }]);
  t.same(urls(up), ["http://127.0.0.1:3", "http://127.0.0.1:2"], "one entry per URL");
  t.equal((up as unknown as { current: number }).current, 1, "still the endpoint calls went to");
  t.same(up.setEndpoints([]), { added: [], removed: [] });
  t.same(urls(up), ["http://127.0.0.1:3", "http://127.0.0.1:2"], "an empty list is ignored");
});
