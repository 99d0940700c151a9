/**
 * --namespace: the key translation (upstream/client/namespace.ts) and the clients wrapper
 * (namespaced-clients.ts). The property tests check the claim itself against etcd's range rules: a
 * translated request selects, among any etcd keys, exactly the prefixed twins of what the client's request
 * selects among the client's keys, so nothing outside the namespace is ever reached.
 */
import { create } from "@bufbuild/protobuf";
import fc from "fast-check";
import t from "tap";
import {
  Compare_CompareResult,
  Compare_CompareTarget,
  CompareSchema,
  DeleteRangeResponseSchema,
  LeaseTimeToLiveResponseSchema,
  PutResponseSchema,
  RangeRequestSchema,
  RangeResponseSchema,
  TxnRequestSchema,
  TxnResponseSchema,
  WatchRequestSchema,
  WatchResponseSchema,
  type RangeRequest,
  type TxnRequest,
  type WatchCreateRequest,
  type WatchRequest,
  type WatchResponse,
} from "../../gen/etcdserverpb/rpc_pb.js";
import { Event_EventType, KeyValueSchema } from "../../gen/mvccpb/kv_pb.js";
import { CampaignResponseSchema, LeaderKeySchema, LeaderResponseSchema } from "../../gen/v3electionpb/v3election_pb.js";
import { LockResponseSchema } from "../../gen/v3lockpb/v3lock_pb.js";
import type { EtcdClients } from "../../src/upstream/client/clients.js";
import { Namespace, prefixEnd } from "../../src/upstream/client/namespace.js";
import { namespacedClients } from "../../src/upstream/client/namespaced-clients.js";
import { PushQueue } from "../../src/upstream/client/push-queue.js";

const b = (...bytes: number[]) => new Uint8Array(bytes);
const s = (str: string) => new Uint8Array([...str].map((c) => c.charCodeAt(0)));
const str = (k: Uint8Array | undefined) => (k === undefined ? "<none>" : String.fromCharCode(...k));
const ns = new Namespace(s("ns/"));

t.test("prefixEnd: last byte below 0xff plus one, 0xff carried, all 0xff is \\0", async (t) => {
  t.equal(str(prefixEnd(s("ns/"))), "ns0");
  t.same([...prefixEnd(b(0x61, 0xff))], [0x62]);
  t.same([...prefixEnd(b(0x61, 0xff, 0xff))], [0x62]);
  t.same([...prefixEnd(b(0x01, 0xfe, 0xff))], [0x01, 0xff]);
  t.same([...prefixEnd(b(0xff))], [0]);
  t.same([...prefixEnd(b(0xff, 0xff))], [0]);
  t.throws(() => new Namespace(b()), "an empty prefix is refused: the proxy does not wrap then");
});

t.test("keys and range_end, as clientv3's prefixInterval", async (t) => {
  t.equal(str(ns.key(s("k"))), "ns/k");
  t.equal(ns.key(b()).length, 0, "an empty key stays empty: etcd refuses it with its own error");
  t.equal(ns.rangeEnd(b()).length, 0, "empty range_end (one key) stays empty");
  t.equal(str(ns.rangeEnd(b(0))), "ns0", 'range_end "\\0" (to the end of the keyspace) becomes the end of the namespace');
  t.equal(str(ns.rangeEnd(s("z"))), "ns/z");
  t.equal(str(ns.rangeEnd(s("l"))), "ns/l", "a prefix range [k, l) stays inside: [ns/k, ns/l)");
  const get = ns.rangeRequest(create(RangeRequestSchema, { key: b(0), rangeEnd: b(0) }));
  t.same([str(get.key), str(get.rangeEnd)], ["ns/\0", "ns0"], 'etcdctl get "" --prefix: the whole namespace');
  const ff = new Namespace(b(0xff));
  t.same([...ff.rangeEnd(b(0))], [0], "an all-0xff prefix has no end: etcd's \\0, every key after is under it");
  t.equal(str(ns.name(b())), "ns/", "an Election or Lock name is always prefixed, the empty one too");
  t.equal(str(ns.strip(s("ns/k"))), "k");
  t.equal(ns.strip(s("ns")), undefined);
  t.equal(ns.strip(s("nt/k")), undefined);
  t.equal(str(ns.strip(s("ns/"))), "", "the key P itself strips to the empty key (no request can name it)");
});

/** etcd's range rules: undefined when etcd refuses the request (empty key). */
function select(keys: readonly string[], key: string, end: string): string[] | undefined {
  if (key === "") return undefined;
  if (end === "") return keys.filter((k) => k === key);
  if (end === "\0") return keys.filter((k) => k >= key);
  return keys.filter((k) => k >= key && k < end);
}

/** Bytes that sit at the edges of the order (0x00, 0xff) and around a prefix, so collisions are common. */
const byteArb = fc.constantFrom(0x00, 0x01, 0x2f, 0x61, 0x62, 0xfe, 0xff);
const keyArb = fc.array(byteArb, { maxLength: 4 }).map((a) => String.fromCharCode(...a));
const prefixArb = fc.array(byteArb, { minLength: 1, maxLength: 3 }).map((a) => String.fromCharCode(...a));
const endArb = fc.oneof(fc.constant(""), fc.constant("\0"), keyArb);

t.test("property: a translated range selects exactly the namespace's twins of the client's range", async () => {
  fc.assert(fc.property(prefixArb, fc.array(keyArb, { maxLength: 12 }), fc.array(keyArb, { maxLength: 12 }), keyArb, endArb, (p, inside, outside, key, end) => {
    const space = new Namespace(s(p));
    // etcd holds keys under P and anywhere else (keys are never empty in etcd).
    const etcdKeys = [...new Set([...inside.map((k) => p + k), ...outside])].filter((k) => k !== "").sort();
    const clientKeys = etcdKeys.flatMap((k) => (k.startsWith(p) ? [k.slice(p.length)] : []));
    const got = select(etcdKeys, str(space.key(s(key))), str(space.rangeEnd(s(end))));
    const want = select(clientKeys, key, end)?.map((k) => p + k);
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      throw new Error(`P=${JSON.stringify(p)} key=${JSON.stringify(key)} end=${JSON.stringify(end)}: etcd selects ${JSON.stringify(got)}, the client's range ${JSON.stringify(want)}`);
    }
    for (const k of got ?? []) if (!k.startsWith(p) || k === p) throw new Error(`${JSON.stringify(k)} is outside the namespace`);
  }), { numRuns: 3000 });
});

t.test("property: a watch (key \"\" is \"\\0\", as etcd reads it) never reaches a key outside, nor P itself", async () => {
  fc.assert(fc.property(prefixArb, fc.array(keyArb, { maxLength: 12 }), keyArb, endArb, (p, others, key, end) => {
    const space = new Namespace(s(p));
    const req = space.watchRequest(create(WatchRequestSchema, { requestUnion: { case: "createRequest", value: { key: s(key), rangeEnd: s(end) } } }));
    const c = req.requestUnion.value as WatchCreateRequest;
    const etcdKeys = [...new Set([p, ...others, ...others.map((k) => p + k)])].filter((k) => k !== "");
    // etcd's watch: key "" is "\0" (v3rpc/watch.go), then range_end "" one key, "\0" from key on, else [key, end).
    for (const k of select(etcdKeys, str(c.key) || "\0", str(c.rangeEnd)) ?? []) {
      if (!k.startsWith(p) || k === p) throw new Error(`watch P=${JSON.stringify(p)} key=${JSON.stringify(key)} end=${JSON.stringify(end)} reaches ${JSON.stringify(k)}`);
    }
  }), { numRuns: 2000 });
});

const put = (key: string) => ({ request: { case: "requestPut" as const, value: { key: s(key), value: s("v") } } });

t.test("Txn: compares and the ops of both branches, nested, prefixed; the request is copied, not changed", async (t) => {
  const original: TxnRequest = create(TxnRequestSchema, {
    compare: [
      { key: s("c"), target: Compare_CompareTarget.VALUE, result: Compare_CompareResult.EQUAL, targetUnion: { case: "value", value: s("x") } },
      { key: s("r"), rangeEnd: b(0), target: Compare_CompareTarget.VERSION, result: Compare_CompareResult.GREATER },
      { key: b() },
    ],
    success: [
      put("p"),
      { request: { case: "requestRange", value: { key: s("a"), rangeEnd: s("b") } } },
      { request: { case: "requestDeleteRange", value: { key: s("d"), rangeEnd: b(0), prevKv: true } } },
      { request: { case: "requestTxn", value: { compare: [{ key: s("nc") }], success: [put("np")], failure: [put("")] } } },
    ],
    failure: [put("f")],
  });
  const before = JSON.stringify(original, (_, v) => (v instanceof Uint8Array ? str(v) : typeof v === "bigint" ? String(v) : v));
  const r = ns.txnRequest(original);
  t.same(r.compare.map((c) => [str(c.key), str(c.rangeEnd)]), [["ns/c", ""], ["ns/r", "ns0"], ["", ""]], "compare: range_end only when set; empty key left for etcd to refuse");
  t.equal(r.compare[0]!.targetUnion.case, "value", "compare target kept");
  const ops = r.success.map((op) => op.request);
  t.equal(str((ops[0]!.value as { key: Uint8Array }).key), "ns/p");
  t.same([str((ops[1]!.value as RangeRequest).key), str((ops[1]!.value as RangeRequest).rangeEnd)], ["ns/a", "ns/b"]);
  t.same([str((ops[2]!.value as RangeRequest).key), str((ops[2]!.value as RangeRequest).rangeEnd)], ["ns/d", "ns0"]);
  const nested = ops[3]!.value as TxnRequest;
  t.equal(str(nested.compare[0]!.key), "ns/nc");
  t.equal(str((nested.success[0]!.request.value as { key: Uint8Array }).key), "ns/np");
  t.equal((nested.failure[0]!.request.value as { key: Uint8Array }).key.length, 0, "an empty key in a nested op stays empty (clientv3 would write the key P)");
  t.equal(str((r.failure[0]!.request.value as { key: Uint8Array }).key), "ns/f");
  t.equal(JSON.stringify(original, (_, v) => (v instanceof Uint8Array ? str(v) : typeof v === "bigint" ? String(v) : v)), before, "the caller's request is unchanged (failover resends it; the cache keys on it)");
});

const kv = (key: string) => create(KeyValueSchema, { key: s(key), value: s("v"), modRevision: 5n });

t.test("responses: keys stripped, keys outside dropped, nested txn answers too", async (t) => {
  const range = ns.rangeResponse(create(RangeResponseSchema, { kvs: [kv("ns/a"), kv("other"), kv("ns/b")], count: 3n }));
  t.same(range.kvs.map((x) => str(x.key)), ["a", "b"]);
  t.equal(str(ns.putResponse(create(PutResponseSchema, { prevKv: kv("ns/p") })).prevKv?.key), "p");
  t.equal(ns.putResponse(create(PutResponseSchema, { prevKv: kv("x/p") })).prevKv, undefined);
  t.same(ns.deleteRangeResponse(create(DeleteRangeResponseSchema, { deleted: 2n, prevKvs: [kv("ns/d1"), kv("ns/d2")] })).prevKvs.map((x) => str(x.key)), ["d1", "d2"]);
  const txn = ns.txnResponse(create(TxnResponseSchema, {
    succeeded: true,
    responses: [
      { response: { case: "responseRange", value: { kvs: [kv("ns/r")] } } },
      { response: { case: "responsePut", value: { prevKv: kv("ns/p") } } },
      { response: { case: "responseDeleteRange", value: { prevKvs: [kv("ns/d")] } } },
      { response: { case: "responseTxn", value: { responses: [{ response: { case: "responseRange", value: { kvs: [kv("ns/deep")] } } }] } } },
    ],
  }));
  const keys = JSON.stringify(txn.responses, (_, v) => (v instanceof Uint8Array ? str(v) : typeof v === "bigint" ? String(v) : v));
  for (const k of ["r", "p", "d", "deep"]) t.match(keys, `"key":"${k}"`);
  t.notMatch(keys, /ns\//, "no prefix left anywhere");
});

t.test("watch: create prefixed, cancel and progress pass; events stripped with prev_kv, outside dropped", async (t) => {
  const created = ns.watchRequest(create(WatchRequestSchema, { requestUnion: { case: "createRequest", value: { key: b(), rangeEnd: b(0), prevKv: true, watchId: 7n } } }));
  const c = created.requestUnion.value as WatchCreateRequest;
  t.same([str(c.key), str(c.rangeEnd), c.prevKv, c.watchId], ["ns/\0", "ns0", true, 7n], 'key "" is "\\0": the watch stays inside');
  const cancel = create(WatchRequestSchema, { requestUnion: { case: "cancelRequest", value: { watchId: 3n } } });
  t.equal(ns.watchRequest(cancel), cancel);
  const res: WatchResponse = ns.watchResponse(create(WatchResponseSchema, {
    watchId: 1n,
    events: [
      { type: Event_EventType.PUT, kv: kv("ns/a"), prevKv: kv("ns/a") },
      { type: Event_EventType.PUT, kv: kv("elsewhere") },
      { type: Event_EventType.DELETE, kv: kv("ns/b") },
    ],
  }));
  t.same(res.events.map((e) => [str(e.kv?.key), e.prevKv ? str(e.prevKv.key) : undefined]), [["a", "a"], ["b", undefined]]);
});

t.test("lease, election and lock answers", async (t) => {
  const ttl = ns.leaseTimeToLiveResponse(create(LeaseTimeToLiveResponseSchema, { ID: 1n, keys: [s("ns/a"), s("other/b"), s("ns"), s("ns/c")] }));
  t.same(ttl.keys.map(str), ["a", "c"], "keys outside the namespace dropped, the rest stripped");
  const campaign = ns.campaignResponse(create(CampaignResponseSchema, { leader: { name: s("ns/e"), key: s("ns/e/694d"), rev: 4n, lease: 9n } }));
  t.same([str(campaign.leader!.name), str(campaign.leader!.key), campaign.leader!.rev], ["e", "e/694d", 4n]);
  const leaderKey = ns.leaderKey(create(LeaderKeySchema, { name: s("e"), key: s("e/694d"), rev: 4n }))!;
  t.same([str(leaderKey.name), str(leaderKey.key), leaderKey.rev], ["ns/e", "ns/e/694d", 4n], "Proclaim and Resign name the prefixed leader");
  t.equal(str(ns.leaderResponse(create(LeaderResponseSchema, { kv: kv("ns/e/694d") })).kv!.key), "e/694d");
  t.equal(str(ns.lockKey(create(LockResponseSchema, { key: s("ns/l/694d") }).key)), "l/694d");
});

/** Fake clients that record what reaches etcd and answer with prefixed keys. */
function fakeClients() {
  const seen: unknown[] = [];
  let pending: ((r: IteratorResult<WatchResponse>) => void) | undefined;
  const source = { returned: false };
  const clients = {
    kv: {
      range: async (req: RangeRequest) => { seen.push(req); return create(RangeResponseSchema, { kvs: [kv(str(req.key))] }); },
      compact: async (req: unknown) => { seen.push(req); return {}; },
    },
    watch: {
      watch: (requests: AsyncIterable<WatchRequest>) => {
        seen.push(requests);
        return {
          [Symbol.asyncIterator]: () => ({
            next: () => new Promise<IteratorResult<WatchResponse>>((resolve) => { pending = resolve; }),
            return: async () => { source.returned = true; pending?.({ done: true, value: undefined }); return { done: true as const, value: undefined }; },
          }),
        };
      },
    },
    lease: {}, election: {}, lock: {},
    maintenance: { status: async () => "status" },
    cluster: {}, auth: {},
  };
  return { clients: clients as unknown as EtcdClients, seen, source, emit: (r: WatchResponse) => pending?.({ done: false, value: r }) };
}

t.test("namespacedClients: init-shaped requests, a resent request not prefixed twice, other services untouched", async (t) => {
  const fake = fakeClients();
  const c = namespacedClients(fake.clients, s("ns/"));
  const req = { key: s("health"), countOnly: true };
  const res = await c.kv.range(req);
  await c.kv.range(req);
  t.same(fake.seen.map((r) => str((r as RangeRequest).key)), ["ns/health", "ns/health"], "retried on failover: the same prefixed key");
  t.equal(str(res.kvs[0]!.key), "health");
  t.equal(str(req.key), "health", "the caller's init object is not changed");
  t.equal(c.maintenance, fake.clients.maintenance, "Maintenance passes through");
});

t.test("namespacedClients: a watch maps both directions, and return() reaches etcd's stream and the request queue at once", async (t) => {
  const fake = fakeClients();
  const c = namespacedClients(fake.clients, s("ns/"));
  const queue = new PushQueue<WatchRequest>(4);
  queue.push(create(WatchRequestSchema, { requestUnion: { case: "createRequest", value: { key: s("k"), rangeEnd: b(0) } } }));
  const responses = c.watch.watch(queue)[Symbol.asyncIterator]();
  const sent = (fake.seen[0] as AsyncIterable<WatchRequest>)[Symbol.asyncIterator]();
  const first = await sent.next();
  const create0 = first.value!.requestUnion.value as WatchCreateRequest;
  t.same([str(create0.key), str(create0.rangeEnd)], ["ns/k", "ns0"]);
  const next = responses.next();
  fake.emit(create(WatchResponseSchema, { events: [{ kv: kv("ns/k1"), prevKv: kv("ns/k1") }] }));
  const got = (await next).value as WatchResponse;
  t.same(got.events.map((e) => [str(e.kv!.key), str(e.prevKv!.key)]), [["k1", "k1"]]);
  // A next() is waiting when the client goes away: return() must not queue behind it.
  const waiting = responses.next();
  await responses.return!();
  t.ok(fake.source.returned, "etcd's stream is returned while a next() waits");
  t.same(await waiting, { done: true, value: undefined });
  const requestWait = sent.next();
  await sent.return!();
  t.ok(queue.isClosed, "the request side's return() closes the PushQueue under it");
  t.same(await requestWait, { done: true, value: undefined });
});

t.test("compare objects: a Compare built by create keeps its oneof through the copy", async (t) => {
  const cmp = create(CompareSchema, { key: s("k"), targetUnion: { case: "modRevision", value: 3n } });
  const r = ns.txnRequest(create(TxnRequestSchema, { compare: [cmp] }));
  t.same([str(r.compare[0]!.key), r.compare[0]!.targetUnion], ["ns/k", { case: "modRevision", value: 3n }]);
});
