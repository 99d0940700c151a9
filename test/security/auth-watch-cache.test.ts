/**
 * The watch cache (--watch-cache-prefix) built while auth was off keeps running after `auth enable`
 * (etcd does not cancel a running watch). Every Range and watch it could answer must still be answered as
 * etcd answers that caller: linearizable, serializable and past-revision Ranges, and watches from a
 * revision in its history, by alice, bob, no token and a wrong token, over every protocol and the gateway.
 */
import t from "tap";
import { Auth, KV } from "../../gen/etcdserverpb/rpc_pb.js";
import { clientFor, enc, PROTOCOLS } from "../helpers/clients.js";
import { startEtcd } from "../helpers/etcd.js";
import { sleep, waitFor } from "../helpers/ports.js";
import { metric } from "../helpers/prom.js";
import { startEdge } from "../helpers/proxy.js";
import { b64, clients, gatewayOutcome, gatewayValues, outcome, PASSWORDS, PREFIX, prefixEnd, token, values, watchCreate, withToken, type User } from "./auth-cluster.js";

const etcd = await startEtcd(t, { extraArgs: ["--bcrypt-cost=4"] });
const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`, `--watch-cache-prefix=${PREFIX.alice}`, `--watch-cache-prefix=${PREFIX.bob}`]);
const direct = clients("grpc", etcd.url);
const USERS: User[] = ["alice", "bob"];

// Auth off: both prefixes cached, with some history.
let pastRev = 0n;
for (let i = 0; i < 3; i++) {
  for (const u of USERS) pastRev = (await direct.kv.put({ key: enc(`${PREFIX[u]}x`), value: enc(`${u[0]}${i}`) })).header!.revision;
}
await waitFor("both prefixes cached", async () => await metric(edge.url, "etcd_edge_watch_cache_ready") === 2);
const historyRev = pastRev - 3n; // inside the cached history
// Auth switched on directly at etcd, behind the proxy's back (the proxy's own AuthEnable path is in auth-window.test.ts).
const auth = clientFor(Auth, "grpc", etcd.url);
await auth.userAdd({ name: "root", password: PASSWORDS.root });
await auth.roleAdd({ name: "root" });
await auth.userGrantRole({ user: "root", role: "root" });
for (const [user, role] of [["alice", "ra"], ["bob", "rb"]] as const) {
  await auth.userAdd({ name: user, password: PASSWORDS[user] });
  await auth.roleAdd({ name: role });
  await auth.roleGrantPermission({ name: role, perm: { permType: 2, key: enc(PREFIX[user]), rangeEnd: enc(prefixEnd(PREFIX[user])) } });
  await auth.userGrantRole({ user, role });
}
await auth.authEnable({});
const tokens = { alice: await token(etcd.url, "alice"), bob: await token(etcd.url, "bob") };
const callers: [string, string | undefined][] = [["alice", tokens.alice], ["bob", tokens.bob], ["no token", undefined], ["a wrong token", tokens.alice.replace(/^[^.]+/, "wrongwrongwrongw")]];
t.comment(`watch cache ready after auth enable: ${await metric(edge.url, "etcd_edge_watch_cache_ready")} of 2 prefixes`);

const served = () => metric(edge.url, "etcd_edge_watch_cache_served_total");

t.test("Ranges the watch cache could answer: each caller gets etcd's answer", async (t) => {
  const before = await served();
  const shapes = [
    { name: "linearizable", req: {} },
    { name: "serializable", req: { serializable: true } },
    { name: `at revision ${historyRev}`, req: { revision: historyRev } },
    { name: "the whole prefix", req: {} , prefix: true },
  ];
  for (const p of PROTOCOLS) {
    const kv = clientFor(KV, p, edge.url);
    for (const u of USERS) {
      for (const s of shapes) {
        const req = { key: enc(s.prefix ? PREFIX[u] : `${PREFIX[u]}x`), ...(s.prefix ? { rangeEnd: enc(prefixEnd(PREFIX[u])) } : {}), ...s.req };
        for (const [who, tok] of callers) {
          const viaEdge = await outcome(kv.range(req, withToken(tok)), values);
          t.equal(viaEdge, await outcome(direct.kv.range(req, withToken(tok)), values), `${p}: ${who} reads ${PREFIX[u]} (${s.name})`);
        }
      }
    }
  }
  for (const u of USERS) {
    for (const [who, tok] of callers) {
      const body = { key: b64(`${PREFIX[u]}x`), revision: String(historyRev) };
      t.equal(await gatewayOutcome(edge.url, "/v3/kv/range", body, tok, gatewayValues), await gatewayOutcome(etcd.url, "/v3/kv/range", body, tok, gatewayValues), `gateway: ${who} reads ${PREFIX[u]}x at ${historyRev}`);
    }
  }
  t.ok(await served() > before, `the watch cache answered some of them (${await served() - before}), so this is not vacuous`);
});

t.test("watches the watch cache could feed (from a revision in its history): each caller gets etcd's answer", async (t) => {
  const before = await served();
  for (const p of PROTOCOLS) {
    const proxy = clients(p, edge.url);
    for (const u of USERS) {
      const req = { key: enc(PREFIX[u]), rangeEnd: enc(prefixEnd(PREFIX[u])), startRevision: historyRev };
      const opened: { who: string; session: { received: { events: unknown[] }[]; close(): void }; mayRead: boolean }[] = [];
      for (const [who, tok] of callers) {
        const viaEdge = await watchCreate(proxy.watch, req, tok);
        const viaEtcd = await watchCreate(direct.watch, req, tok);
        t.equal(viaEdge.first, viaEtcd.first, `${p}: ${who} watches ${PREFIX[u]} from ${historyRev}`);
        opened.push({ who, session: viaEdge.session, mayRead: who === u }, { who: `${who} (etcd)`, session: viaEtcd.session, mayRead: who === u });
      }
      await sleep(300);
      for (const o of opened) {
        const events = o.session.received.flatMap((r) => r.events).length;
        if (o.mayRead) t.equal(events, 2, `${p}: ${o.who} got the history of ${PREFIX[u]} from ${historyRev} (its 2 events)`);
        else t.equal(events, 0, `${p}: ${o.who} got no event of ${PREFIX[u]}`);
        o.session.close();
      }
    }
  }
  t.ok(await served() > before, `the watch cache fed some of them (${await served() - before}), so this is not vacuous`);
});
