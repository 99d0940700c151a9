/**
 * "No request ever runs under another caller's token", under load: alice (/a/ only) and bob (/b/ only)
 * fire identical reads, writes, txns and watch creates at once, many at a time, over every protocol and
 * the JSON gateway, with strangers (no token, a wrong token) mixed in, through the range cache,
 * single-flight and the watch hub. Each answer must be the one etcd gives that caller: bob's writes to
 * /a/ are always refused and alice's always succeed (and the reverse), no read shows a caller what etcd
 * refuses it, and the long-running watches see exactly their owner's writes.
 */
import { Code } from "@connectrpc/connect";
import t from "tap";
import type { WatchResponse } from "../../gen/etcdserverpb/rpc_pb.js";
import { enc, PROTOCOLS } from "../helpers/clients.js";
import { sleep } from "../helpers/ports.js";
import {
  authCluster, b64, clients, gatewayOutcome, gatewayValues, gatewayWatchCreate, PREFIX, prefixEnd, putOutcome,
  rangeOutcome, txnOutcome, watchCreate, type User,
} from "./auth-cluster.js";

const ROUNDS = 15;
const c = await authCluster(t);
const USERS: User[] = ["alice", "bob"];
const DENIED = `${Code.PermissionDenied} etcdserver: permission denied`;
const wrongToken = c.tokens.alice.replace(/^[^.]+/, "wrongwrongwrongw");
const STRANGERS = [
  { who: "no token", token: undefined as string | undefined, refusal: `${Code.InvalidArgument} etcdserver: user name is empty` },
  { who: "a wrong token", token: wrongToken, refusal: `${Code.Unauthenticated} etcdserver: invalid auth token` },
];
const range = (u: User) => ({ key: enc(PREFIX[u]), rangeEnd: enc(prefixEnd(PREFIX[u])) });

t.test("alice and bob at once, many calls at a time: every answer is the one etcd gives that caller", async (t) => {
  // Long-running watches through the proxy: each user on her/his own prefix (must see exactly the
  // owner's writes) and on the other's (must be refused, and stay silent).
  const watches: { p: string; owner: User; on: User; events: () => WatchResponse[]; close(): void; first: string }[] = [];
  for (const p of PROTOCOLS) {
    for (const owner of USERS) {
      for (const on of USERS) {
        const w = await watchCreate(clients(p, c.edge.url).watch, range(on), c.tokens[owner]);
        watches.push({ p, owner, on, first: w.first, events: () => w.session.received, close: () => w.session.close() });
      }
    }
  }
  for (const w of watches) {
    t.equal(w.first.startsWith(w.owner === w.on ? "created=true canceled=false" : "created=true canceled=true"), true, `${w.p}: ${w.owner}'s watch on ${PREFIX[w.on]}: ${w.first}`);
  }

  const wrong: string[] = [];
  const written: Record<User, Set<string>> = { alice: new Set(), bob: new Set() };
  let calls = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const checks: Promise<void>[] = [];
    const expect = (what: string, p: Promise<string>, ok: (o: string) => boolean) => {
      calls++;
      checks.push(p.then((o) => { if (!ok(o)) wrong.push(`${what}: ${o}`); }, (err: unknown) => { wrong.push(`${what}: threw ${String(err)}`); }));
    };
    // The same requests by every caller, built in one go so that they reach the proxy together.
    for (const p of [...PROTOCOLS, "gateway"] as const) {
      for (const target of USERS) {
        const key = PREFIX[target] + "x";
        const ownValue = (o: string) => new RegExp(`^(ok|200) ${key}=(${target}-.*|${target[0]}0)$`).test(o);
        const callers = [...USERS.map((u) => ({ who: u as string, token: c.tokens[u], refusal: DENIED, mayAccess: u === target })), ...STRANGERS.map((s) => ({ ...s, mayAccess: false }))];
        for (const caller of callers) {
          const may = (o: string) => caller.mayAccess && ownValue(o);
          const refused = (o: string) => !caller.mayAccess && (p === "gateway" ? gatewayRefused(o, caller.refusal) : o === caller.refusal);
          const what = `round ${round} ${p}: ${caller.who} on ${key}`;
          const value = `${caller.who}-${round}-${p}`;
          if (caller.mayAccess) written[target as User].add(value);
          if (p === "gateway") {
            for (const serializable of [true, false]) expect(`${what} range`, gatewayOutcome(c.edge.url, "/v3/kv/range", { key: b64(key), serializable }, caller.token, gatewayValues), (o) => may(o) || refused(o));
            expect(`${what} put`, gatewayOutcome(c.edge.url, "/v3/kv/put", { key: b64(key), value: b64(value) }, caller.token), (o) => (caller.mayAccess ? o === "200 " : refused(o)));
            continue;
          }
          const kv = clients(p, c.edge.url).kv;
          for (const serializable of [true, false]) expect(`${what} range`, rangeOutcome(kv, key, serializable, caller.token), (o) => may(o) || refused(o));
          expect(`${what} put`, putOutcome(kv, key, value, caller.token), (o) => (caller.mayAccess ? o === "ok " : refused(o)));
          expect(`${what} txn`, txnOutcome(kv, key, `${value}-txn`, caller.token), (o) => (caller.mayAccess ? o === "ok succeeded=true" : refused(o)));
          if (caller.mayAccess) written[target as User].add(`${value}-txn`);
        }
        // Watch creates by both users on the same range at once: joins of the running watches.
        if (p !== "gateway" && round % 5 === 0) {
          for (const u of USERS) {
            expect(`round ${round} ${p}: ${u} watches ${PREFIX[target]}`, watchCreate(clients(p, c.edge.url).watch, range(target), c.tokens[u]).then((w) => { w.session.close(); return w.first; }),
              (o) => (u === target ? o === "created=true canceled=false reason=" : o === "created=true canceled=true reason=rpc error: code = PermissionDenied desc = etcdserver: permission denied"));
          }
        }
      }
    }
    if (round % 5 === 0) {
      for (const u of USERS) {
        expect(`round ${round} gateway: ${u} watches ${PREFIX.alice}`, gatewayWatchCreate(c.edge.url, PREFIX.alice, prefixEnd(PREFIX.alice), c.tokens[u]).then((w) => { w.abort(); return w.first; }),
          (o) => (u === "alice" ? o === "created=true canceled=false reason=" : /^created=true canceled=true reason=.*permission denied$/.test(o)));
      }
    }
    await Promise.all(checks);
  }
  t.same(wrong, [], `all ${calls} calls got what etcd gives their caller`);

  // Every write that landed is the owner's, and each watch on its owner's prefix saw exactly those.
  const root = clients("grpc", c.etcd.url).kv;
  for (const u of USERS) {
    const r = await root.range(range(u), { headers: { token: c.tokens.root } });
    const vals = r.kvs.map((kv) => Buffer.from(kv.value).toString());
    t.ok(vals.every((v) => v.startsWith(`${u}-`) || v === `${u[0]}0`), `${PREFIX[u]} holds only ${u}'s values: ${vals.join(",")}`);
  }
  const seen = (w: (typeof watches)[number]) => w.events().flatMap((r) => r.events.map((e) => Buffer.from(e.kv!.value).toString()));
  for (const w of watches.filter((w) => w.owner === w.on)) {
    const want = written[w.owner].size;
    for (let i = 0; i < 200 && seen(w).length < want; i++) await sleep(50);
  }
  await sleep(200);
  for (const w of watches) {
    const vals = seen(w);
    if (w.owner === w.on) {
      t.same([...new Set(vals)].sort(), [...written[w.owner]].sort(), `${w.p}: ${w.owner}'s watch on ${PREFIX[w.on]} saw exactly her/his ${written[w.owner].size} writes`);
      t.equal(vals.length, written[w.owner].size, `${w.p}: each once`);
    } else {
      t.same(vals, [], `${w.p}: ${w.owner}'s refused watch on ${PREFIX[w.on]} saw nothing`);
    }
    w.close();
  }
});

/** The gateway's refusal for an etcd error: its JSON body carries etcd's message and gRPC code. */
function gatewayRefused(o: string, refusal: string): boolean {
  const m = /^\d{3} (\{.*\})$/.exec(o);
  if (!m) return false;
  const body = JSON.parse(m[1]!) as { message?: string; code?: number };
  return `${body.code} ${body.message}` === refusal;
}
