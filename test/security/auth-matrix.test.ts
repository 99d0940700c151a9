/**
 * Auth on, two users whose roles differ (alice: /a/ only, bob: /b/ only): every call made through the
 * proxy and directly on etcd must have the same outcome (ok, or etcd's code and message), over gRPC,
 * gRPC-Web, Connect (binary and JSON) and the JSON gateway, for what the proxy caches, single-flights or
 * shares: serializable Range (the range cache), identical linearizable Ranges at once (single-flight),
 * watches of the same range (the watch hub, joiners included), lease keep-alives (one shared upstream
 * stream) and Txn; a wrong token and an expired one get etcd's error.
 */
import { Code } from "@connectrpc/connect";
import t, { type Test } from "tap";
import { Auth, Lease } from "../../gen/etcdserverpb/rpc_pb.js";
import { clientFor, enc, PROTOCOLS, type ProtocolName } from "../helpers/clients.js";
import { sleep } from "../helpers/ports.js";
import {
  authCluster, b64, clients, createdSummary, gatewayOutcome, gatewayValues, gatewayWatchCreate, keepAliveOutcome,
  outcome, PREFIX, prefixEnd, putOutcome, rangeOutcome, token, txnOutcome, watchCreate, type User,
} from "./auth-cluster.js";

const c = await authCluster(t);
const direct = clients("grpc", c.etcd.url);
const USERS: User[] = ["alice", "bob"];
const other = (u: User): User => (u === "alice" ? "bob" : "alice");
/**
 * The callers tried besides alice and bob: no token, and a token etcd never issued (alice's with its
 * random part changed; a made-up index after the dot would make etcd, and so the proxy, wait for that
 * raft index to be applied).
 */
const STRANGERS: [string, string | undefined][] = [["no token", undefined], ["a wrong token", c.tokens.alice.replace(/^[^.]+/, "wrongwrongwrongw")]];

t.test("serializable Range: an answer cached for one user is refused to the other as etcd refuses it", async (t) => {
  for (const p of PROTOCOLS) {
    const proxy = clients(p, c.edge.url);
    for (const owner of USERS) {
      const key = PREFIX[owner] + "x";
      for (let i = 0; i < 2; i++) {
        t.equal(await rangeOutcome(proxy.kv, key, true, c.tokens[owner]), await rangeOutcome(direct.kv, key, true, c.tokens[owner]), `${p}: ${owner} reads ${key} (${i ? "again" : "first"})`);
      }
      const refused = await rangeOutcome(proxy.kv, key, true, c.tokens[other(owner)]);
      t.equal(refused, await rangeOutcome(direct.kv, key, true, c.tokens[other(owner)]), `${p}: ${other(owner)} asks the same: etcd's answer`);
      t.equal(refused, `${Code.PermissionDenied} etcdserver: permission denied`);
      for (const [who, tok] of STRANGERS) {
        t.equal(await rangeOutcome(proxy.kv, key, true, tok), await rangeOutcome(direct.kv, key, true, tok), `${p}: ${who}: etcd's answer`);
      }
    }
  }
  for (const owner of USERS) {
    const body = { key: b64(PREFIX[owner] + "x"), serializable: true };
    const ask = (base: string, tok: string | undefined) => gatewayOutcome(base, "/v3/kv/range", body, tok, gatewayValues);
    await ask(c.edge.url, c.tokens[owner]);
    t.equal(await ask(c.edge.url, c.tokens[owner]), await ask(c.etcd.url, c.tokens[owner]), `gateway: ${owner} reads her/his key twice`);
    const refused = await ask(c.edge.url, c.tokens[other(owner)]);
    t.equal(refused, await ask(c.etcd.url, c.tokens[other(owner)]), `gateway: ${other(owner)} asks the same: etcd's gateway's answer`);
    t.match(refused, /^403 .*permission denied/);
    for (const [who, tok] of STRANGERS) t.equal(await ask(c.edge.url, tok), await ask(c.etcd.url, tok), `gateway: ${who}`);
  }
});

/** `n` calls by alternating users fired at once; each result must be what etcd gives that user. */
async function concurrently(t: Test, what: string, n: number, expect: Record<User, string>, call: (u: User) => Promise<string>): Promise<void> {
  const users = Array.from({ length: n }, (_, i) => USERS[i % 2]!);
  const got = await Promise.all(users.map((u) => call(u)));
  const wrong = got.map((g, i) => ({ user: users[i]!, got: g })).filter((r) => r.got !== expect[r.user]);
  t.same(wrong, [], `${what}: all ${n} answers are each user's own (alice: ${expect.alice}; bob: ${expect.bob})`);
}

t.test("identical Ranges fired at once by both users: single-flight never shares across users", async (t) => {
  for (const serializable of [false, true]) {
    for (const key of [PREFIX.alice + "x", PREFIX.bob + "x"]) {
      const expect = { alice: await rangeOutcome(direct.kv, key, serializable, c.tokens.alice), bob: await rangeOutcome(direct.kv, key, serializable, c.tokens.bob) };
      for (const p of PROTOCOLS) {
        const kv = clients(p, c.edge.url).kv;
        await concurrently(t, `${p} ${serializable ? "serializable" : "linearizable"} ${key}`, 60, expect, (u) => rangeOutcome(kv, key, serializable, c.tokens[u]));
      }
      const body = { key: b64(key), serializable };
      const gw = (base: string, u: User) => gatewayOutcome(base, "/v3/kv/range", body, c.tokens[u], gatewayValues);
      await concurrently(t, `gateway ${serializable ? "serializable" : "linearizable"} ${key}`, 40, { alice: await gw(c.etcd.url, "alice"), bob: await gw(c.etcd.url, "bob") }, (u) => gw(c.edge.url, u));
    }
  }
});

t.test("Txn: each user writes only under her/his prefix, as etcd decides", async (t) => {
  for (const p of [...PROTOCOLS, "gateway"] as const) {
    for (const u of USERS) {
      for (const target of USERS) {
        const key = `${PREFIX[target]}t-${p}`;
        const viaEdge = p === "gateway" ? await gatewayTxn(c.edge.url, key, u) : await txnOutcome(clients(p, c.edge.url).kv, key, `${u}-${p}`, c.tokens[u]);
        const viaEtcd = p === "gateway" ? await gatewayTxn(c.etcd.url, key, u) : await txnOutcome(direct.kv, key, `${u}-${p}`, c.tokens[u]);
        t.equal(viaEdge, viaEtcd, `${p}: ${u}'s txn on ${key}`);
        if (u !== target) t.match(viaEdge, /permission denied/, `${p}: ${u} may not write ${key}`);
      }
    }
  }
  // Nothing written under /a/ by bob nor under /b/ by alice got through either way.
  const all = await outcome(direct.kv.range({ key: enc("/"), rangeEnd: enc("0") }, { headers: { token: c.tokens.root } }), (r) => r.kvs.map((kv) => `${Buffer.from(kv.key)}=${Buffer.from(kv.value)}`).join(","));
  t.notMatch(all, /\/a\/[^=]*=bob|\/b\/[^=]*=alice/, `no cross-user write: ${all}`);
});

function gatewayTxn(base: string, key: string, u: User): Promise<string> {
  const k = b64(key);
  return gatewayOutcome(base, "/v3/kv/txn", {
    compare: [{ key: k, target: "VERSION", result: "GREATER", version: "0" }],
    success: [{ request_put: { key: k, value: b64(`${u}-gateway`) } }],
    failure: [{ request_range: { key: k } }],
  }, c.tokens[u], (r) => `succeeded=${r["succeeded"] === true}`);
}

t.test("watches of one range by both users: the other's is refused as etcd refuses it, joiners too", async (t) => {
  for (const p of PROTOCOLS) {
    const proxy = clients(p, c.edge.url);
    for (const owner of USERS) {
      const req = { key: enc(PREFIX[owner]), rangeEnd: enc(prefixEnd(PREFIX[owner])) };
      const [mine, theirs] = await Promise.all([watchCreate(proxy.watch, req, c.tokens[owner]), watchCreate(proxy.watch, req, c.tokens[other(owner)])]);
      const [mineEtcd, theirsEtcd] = [await watchCreate(direct.watch, req, c.tokens[owner]), await watchCreate(direct.watch, req, c.tokens[other(owner)])];
      t.equal(mine.first, mineEtcd.first, `${p}: ${owner} watches ${PREFIX[owner]}: etcd's answer`);
      t.equal(mine.first, "created=true canceled=false reason=");
      t.equal(theirs.first, theirsEtcd.first, `${p}: ${other(owner)} watches ${PREFIX[owner]} at the same time: etcd's answer`);
      t.match(theirs.first, /canceled=true reason=.*permission denied/);
      // Joining the running watch: the other user again (its own identity), and the owner on a new stream.
      const joiner = await watchCreate(proxy.watch, req, c.tokens[other(owner)]);
      t.equal(joiner.first, theirsEtcd.first, `${p}: ${other(owner)} joining ${owner}'s running watch: etcd's answer`);
      const ownerJoins = await watchCreate(proxy.watch, req, c.tokens[owner]);
      t.equal(ownerJoins.first, mineEtcd.first, `${p}: ${owner} on a second stream joins`);
      const value = `${owner}-${p}`;
      await direct.kv.put({ key: enc(PREFIX[owner] + "w"), value: enc(value) }, { headers: { token: c.tokens[owner] } });
      for (const s of [mine.session, ownerJoins.session]) {
        await s.until(`${p}: ${owner}'s event`, () => s.received.some((r) => r.events.some((e) => Buffer.from(e.kv!.value).toString() === value)));
      }
      await sleep(50);
      for (const [who, s] of [["concurrent", theirs.session], ["joiner", joiner.session]] as const) {
        t.same(s.received.flatMap((r) => r.events), [], `${p}: ${other(owner)} (${who}) got no event of ${PREFIX[owner]}`);
      }
      for (const s of [mine, theirs, mineEtcd, theirsEtcd, joiner, ownerJoins]) s.session.close();
    }
  }
  for (const owner of USERS) {
    const [key, end] = [PREFIX[owner], prefixEnd(PREFIX[owner])];
    const mine = await gatewayWatchCreate(c.edge.url, key, end, c.tokens[owner]);
    const theirs = await gatewayWatchCreate(c.edge.url, key, end, c.tokens[other(owner)]);
    const [mineEtcd, theirsEtcd] = [await gatewayWatchCreate(c.etcd.url, key, end, c.tokens[owner]), await gatewayWatchCreate(c.etcd.url, key, end, c.tokens[other(owner)])];
    t.equal(mine.first, mineEtcd.first, `gateway: ${owner} watches ${key}`);
    t.equal(theirs.first, theirsEtcd.first, `gateway: ${other(owner)} joins ${owner}'s range: etcd's gateway's answer`);
    t.match(theirs.first, /canceled=true/);
    for (const s of [mine, theirs, mineEtcd, theirsEtcd]) s.abort();
  }
});

t.test("lease keep-alives share one upstream stream: every caller gets etcd's answer", async (t) => {
  const aliceLease = (await direct.lease.leaseGrant({ TTL: 60n }, { headers: { token: c.tokens.alice } })).ID;
  await direct.kv.put({ key: enc("/a/leased"), value: enc("v"), lease: aliceLease }, { headers: { token: c.tokens.alice } });
  const callers: [string, string | undefined][] = [["alice", c.tokens.alice], ["bob", c.tokens.bob], ...STRANGERS];
  for (const p of PROTOCOLS) {
    const lease = clientFor(Lease, p, c.edge.url);
    const viaEdge = await Promise.all(callers.map(([, tok]) => keepAliveOutcome(lease, aliceLease, tok)));
    for (const [i, [who, tok]] of callers.entries()) {
      t.equal(viaEdge[i], await keepAliveOutcome(direct.lease, aliceLease, tok), `${p}: ${who} keeps alice's lease alive (at once with the others): etcd's answer`);
    }
    for (const [who, tok] of callers) {
      const ttl = (l: ProtocolName | "direct") => outcome((l === "direct" ? direct.lease : clientFor(Lease, l, c.edge.url)).leaseTimeToLive({ ID: aliceLease, keys: true }, tok === undefined ? {} : { headers: { token: tok } }), (r) => `keys=${r.keys.length}`);
      t.equal(await ttl(p), await ttl("direct"), `${p}: ${who}'s LeaseTimeToLive with keys: etcd's answer`);
    }
  }
  for (const [who, tok] of callers.slice(1)) {
    const revoke = (l: typeof direct.lease) => outcome(l.leaseRevoke({ ID: aliceLease }, tok === undefined ? {} : { headers: { token: tok } }));
    const viaEdge = await revoke(clientFor(Lease, "grpc", c.edge.url));
    t.equal(viaEdge, await revoke(direct.lease), `${who} revokes alice's lease (which holds /a/leased): etcd's answer`);
    t.notMatch(viaEdge, /^ok/, `${who} may not revoke it`);
  }
  t.equal(await keepAliveOutcome(direct.lease, aliceLease, c.tokens.alice), "ok id=true ttl>0", "alice's lease is still there");
});

t.test("an expired token gets etcd's error everywhere, a watch joiner included", async (t) => {
  const short = await authCluster(t, ["--auth-token-ttl=1"]);
  const shortDirect = clients("grpc", short.etcd.url);
  const expiring = await token(short.etcd.url, "alice");
  // A watch opened while the token is valid, then left running: later creates with the token join it.
  const running = await watchCreate(clients("grpc", short.edge.url).watch, { key: enc(PREFIX.alice), rangeEnd: enc(prefixEnd(PREFIX.alice)) }, expiring);
  t.equal(running.first, "created=true canceled=false reason=");
  // etcd drops a simple token 1 s (its TTL) after its last use, checking every second; nothing uses it now.
  await sleep(3500);
  t.equal(await rangeOutcome(shortDirect.kv, "/a/x", true, expiring), `${Code.Unauthenticated} etcdserver: invalid auth token`, "etcd: the token expired");
  for (const p of PROTOCOLS) {
    const proxy = clients(p, short.edge.url);
    for (const serializable of [true, false]) {
      t.equal(await rangeOutcome(proxy.kv, "/a/x", serializable, expiring), await rangeOutcome(shortDirect.kv, "/a/x", serializable, expiring), `${p}: ${serializable ? "serializable" : "linearizable"} Range`);
    }
    t.equal(await putOutcome(proxy.kv, "/a/x", "expired", expiring), await putOutcome(shortDirect.kv, "/a/x", "expired", expiring), `${p}: Put`);
    t.equal(await txnOutcome(proxy.kv, "/a/x", "expired", expiring), await txnOutcome(shortDirect.kv, "/a/x", "expired", expiring), `${p}: Txn`);
    const joiner = await watchCreate(proxy.watch, { key: enc(PREFIX.alice), rangeEnd: enc(prefixEnd(PREFIX.alice)) }, expiring);
    const fresh = await watchCreate(shortDirect.watch, { key: enc(PREFIX.alice), rangeEnd: enc(prefixEnd(PREFIX.alice)) }, expiring);
    t.equal(joiner.first, fresh.first, `${p}: a create joining the running watch gets etcd's refusal`);
    t.equal(fresh.first, "created=true canceled=true reason=rpc error: code = Unauthenticated desc = etcdserver: invalid auth token");
    joiner.session.close();
    fresh.session.close();
  }
  const gw = (base: string) => gatewayOutcome(base, "/v3/kv/range", { key: b64("/a/x") }, expiring, gatewayValues);
  t.equal(await gw(short.edge.url), await gw(short.etcd.url), "gateway: Range");
  t.match(await gw(short.edge.url), /^401 .*invalid auth token/);
  running.session.close();
});

t.test("a permission revoked while a watch runs: joiners with the old token and with a new one get etcd's answer", async (t) => {
  // Last: it takes alice's /a/ permission away on the shared cluster.
  const req = { key: enc(PREFIX.alice), rangeEnd: enc(prefixEnd(PREFIX.alice)) };
  const old = c.tokens.alice;
  const running = await watchCreate(clients("grpc", c.edge.url).watch, req, old);
  t.equal(running.first, "created=true canceled=false reason=");
  await clientFor(Auth, "grpc", c.etcd.url).roleRevokePermission({ role: "ra", key: enc(PREFIX.alice), rangeEnd: enc(prefixEnd(PREFIX.alice)) }, { headers: { token: c.tokens.root } });
  const fresh = await token(c.etcd.url, "alice");
  for (const p of PROTOCOLS) {
    const proxy = clients(p, c.edge.url);
    for (const [which, tok] of [["the old token (joins the running watch)", old], ["a new token", fresh]] as const) {
      const viaEdge = await watchCreate(proxy.watch, req, tok);
      const viaEtcd = await watchCreate(direct.watch, req, tok);
      t.equal(viaEdge.first, viaEtcd.first, `${p}: alice's watch create with ${which}: etcd's answer`);
      t.match(viaEdge.first, /canceled=true/, `refused: ${viaEdge.first}`);
      viaEdge.session.close();
      viaEtcd.session.close();
      t.equal(await rangeOutcome(proxy.kv, "/a/x", true, tok), await rangeOutcome(direct.kv, "/a/x", true, tok), `${p}: alice's Range with ${which}: etcd's answer`);
    }
  }
  running.session.close();
});
