/**
 * One KV + Watch suite, run over every protocol a client may speak to the proxy: gRPC, gRPC-Web and Connect
 * (binary and JSON) over HTTP/2, and gRPC-Web and Connect over HTTP/1.1 for the unary calls (bidi streams
 * need HTTP/2). Where it can, each case makes the same call directly against etcd with a gRPC client and
 * compares the two answers, so the suite checks "behaves as etcd does", not our idea of it.
 */
import { create, toJson, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { Code, type Client } from "@connectrpc/connect";
import t from "tap";
import {
  Compare_CompareResult,
  Compare_CompareTarget,
  DeleteRangeResponseSchema,
  KV,
  Lease,
  PutResponseSchema,
  RangeResponseSchema,
  TxnResponseSchema,
  Watch,
  WatchRequestSchema,
  WatchResponseSchema,
  type WatchRequest,
  type WatchResponse,
} from "../../gen/etcdserverpb/rpc_pb.js";
import { EventSchema } from "../../gen/mvccpb/kv_pb.js";
import { clientFor, dec, enc, PROTOCOLS, type ProtocolName, rejection } from "../helpers/clients.js";
import { startEtcd } from "../helpers/etcd.js";
import { startEdge } from "../helpers/proxy.js";
import { AsyncQueue, nextWithin } from "../helpers/streams.js";

const etcd = await startEtcd(t);
const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`]);
const direct = { kv: clientFor(KV, "grpc", etcd.url), watch: clientFor(Watch, "grpc", etcd.url), lease: clientFor(Lease, "grpc", etcd.url) };

interface Variant {
  protocol: ProtocolName;
  httpVersion: "1.1" | "2";
}
const VARIANTS: Variant[] = [
  ...PROTOCOLS.map((protocol) => ({ protocol, httpVersion: "2" as const })),
  // gRPC needs HTTP/2 (trailers); the others must work over HTTP/1.1 for browsers and plain HTTP stacks.
  ...PROTOCOLS.filter((p) => p !== "grpc").map((protocol) => ({ protocol, httpVersion: "1.1" as const })),
];

/**
 * A response as comparable JSON: the proxy's call and etcd's run on different keys (`ours` and `theirs`
 * prefixes of equal length) at different revisions, so keys are mapped back and every revision is dropped.
 */
function comparable<D extends DescMessage>(schema: D, msg: MessageShape<D>, theirs?: string, ours?: string): unknown {
  const json = toJson(schema, msg, { alwaysEmitImplicit: false });
  const REVISIONS = new Set(["revision", "createRevision", "modRevision"]);
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (v === null || typeof v !== "object") return v;
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      if (REVISIONS.has(k)) continue;
      if (k === "key" && typeof x === "string" && theirs !== undefined && ours !== undefined) {
        out[k] = Buffer.from(Buffer.from(x, "base64").toString().replace(theirs, ours)).toString("base64");
      } else {
        out[k] = walk(x);
      }
    }
    return out;
  };
  return walk(json);
}

for (const v of VARIANTS) {
  const name = `${v.protocol} over HTTP/${v.httpVersion}`;
  // Equal-length prefixes so that mapped keys sort the same way on both sides.
  const tag = `${v.protocol}-${v.httpVersion}`;
  const ours = `p/${tag}/`;
  const theirs = `d/${tag}/`;
  const kv: Client<typeof KV> = clientFor(KV, v.protocol, edge.url, v.httpVersion);
  const lease: Client<typeof Lease> = clientFor(Lease, v.protocol, edge.url, v.httpVersion);

  t.test(`${name}: Put, Range, Txn, DeleteRange answer as etcd does`, async (t) => {
    for (const [k, val] of [["a", "1"], ["b", "2"], ["c", "3"]] as const) {
      const viaProxy = await kv.put({ key: enc(ours + k), value: enc(val), prevKv: true });
      const viaEtcd = await direct.kv.put({ key: enc(theirs + k), value: enc(val), prevKv: true });
      t.same(comparable(PutResponseSchema, viaProxy), comparable(PutResponseSchema, viaEtcd), `Put ${k}`);
      t.ok(viaProxy.header && viaProxy.header.revision > 0n, "Put answers with a header revision");
    }
    // Overwrite: prev_kv comes back.
    const again = await kv.put({ key: enc(ours + "a"), value: enc("1b"), prevKv: true });
    const againEtcd = await direct.kv.put({ key: enc(theirs + "a"), value: enc("1b"), prevKv: true });
    t.equal(dec(again.prevKv!.value), "1", "prev_kv of an overwrite");
    t.same(comparable(PutResponseSchema, again, theirs, ours), comparable(PutResponseSchema, againEtcd, theirs, ours), "overwrite with prev_kv");

    // Reads at the same revision: the whole answer, header included, must be etcd's.
    for (const req of [
      { key: enc(ours + "a") },
      { key: enc(ours), rangeEnd: enc(ours.slice(0, -1) + "0") },
      { key: enc(ours), rangeEnd: enc(ours.slice(0, -1) + "0"), limit: 2n },
      { key: enc(ours), rangeEnd: enc(ours.slice(0, -1) + "0"), countOnly: true },
      { key: enc(ours), rangeEnd: enc(ours.slice(0, -1) + "0"), keysOnly: true, sortOrder: 2 },
      { key: enc(ours + "missing") },
    ]) {
      const viaProxy = await kv.range(req);
      const viaEtcd = await direct.kv.range(req);
      t.same(toJson(RangeResponseSchema, viaProxy), toJson(RangeResponseSchema, viaEtcd), `Range ${JSON.stringify({ ...req, key: dec(req.key), rangeEnd: req.rangeEnd && dec(req.rangeEnd) }, (_, x) => (typeof x === "bigint" ? String(x) : x))}`);
    }

    // Txn compare-and-swap: succeeds while the value is what we expect, fails after.
    const cas = (prefix: string, expect: string, next: string) => ({
      compare: [{ key: enc(prefix + "b"), result: Compare_CompareResult.EQUAL, target: Compare_CompareTarget.VALUE, targetUnion: { case: "value" as const, value: enc(expect) } }],
      success: [{ request: { case: "requestPut" as const, value: { key: enc(prefix + "b"), value: enc(next) } } }],
      failure: [{ request: { case: "requestRange" as const, value: { key: enc(prefix + "b") } } }],
    });
    const won = await kv.txn(cas(ours, "2", "swapped"));
    const wonEtcd = await direct.kv.txn(cas(theirs, "2", "swapped"));
    t.equal(won.succeeded, true, "CAS on the expected value succeeds");
    t.same(comparable(TxnResponseSchema, won, theirs, ours), comparable(TxnResponseSchema, wonEtcd, theirs, ours), "Txn success answer");
    const lost = await kv.txn(cas(ours, "2", "never"));
    const lostEtcd = await direct.kv.txn(cas(theirs, "2", "never"));
    t.equal(lost.succeeded, false, "CAS on a stale value fails");
    const failRange = lost.responses[0]?.response;
    t.equal(failRange?.case, "responseRange", "the failure branch ran");
    t.equal(failRange?.case === "responseRange" ? dec(failRange.value.kvs[0]!.value) : "", "swapped");
    t.same(comparable(TxnResponseSchema, lost, theirs, ours), comparable(TxnResponseSchema, lostEtcd, theirs, ours), "Txn failure answer");

    // DeleteRange of the whole prefix with prev_kv.
    const del = await kv.deleteRange({ key: enc(ours), rangeEnd: enc(ours.slice(0, -1) + "0"), prevKv: true });
    const delEtcd = await direct.kv.deleteRange({ key: enc(theirs), rangeEnd: enc(theirs.slice(0, -1) + "0"), prevKv: true });
    t.equal(del.deleted, 3n);
    t.same(comparable(DeleteRangeResponseSchema, del, theirs, ours), comparable(DeleteRangeResponseSchema, delEtcd, theirs, ours), "DeleteRange answer");
    t.equal((await direct.kv.range({ key: enc(ours), rangeEnd: enc(ours.slice(0, -1) + "0"), countOnly: true })).count, 0n, "the delete reached etcd");
  });

  t.test(`${name}: etcd's errors keep their code and text`, async (t) => {
    const emptyKey = await rejection(kv.range({ key: new Uint8Array() }));
    const emptyKeyEtcd = await rejection(direct.kv.range({ key: new Uint8Array() }));
    t.equal(emptyKey.code, Code.InvalidArgument, "Range with an empty key: code");
    t.equal(emptyKey.rawMessage, "etcdserver: key is not provided", "Range with an empty key: message");
    t.same([emptyKey.code, emptyKey.rawMessage], [emptyKeyEtcd.code, emptyKeyEtcd.rawMessage], "as etcd answers it");

    const noLease = await rejection(lease.leaseRevoke({ ID: 0x1234abcdn }));
    const noLeaseEtcd = await rejection(direct.lease.leaseRevoke({ ID: 0x1234abcdn }));
    t.equal(noLease.code, Code.NotFound, "LeaseRevoke of an unknown id: code");
    t.equal(noLease.rawMessage, "etcdserver: requested lease not found", "LeaseRevoke of an unknown id: message");
    t.same([noLease.code, noLease.rawMessage], [noLeaseEtcd.code, noLeaseEtcd.rawMessage], "as etcd answers it");
  });

  if (v.httpVersion !== "2") continue;
  const watch: Client<typeof Watch> = clientFor(Watch, v.protocol, edge.url, v.httpVersion);

  t.test(`${name}: Watch creates, delivers events, cancels`, async (t) => {
    const prefix = `w/${tag}/`;
    const create_ = create(WatchRequestSchema, { requestUnion: { case: "createRequest", value: { key: enc(prefix), rangeEnd: enc(prefix.slice(0, -1) + "0"), prevKv: true } } });
    const abort = new AbortController();
    const abortEtcd = new AbortController();
    t.teardown(() => { abort.abort(); abortEtcd.abort(); });
    const requests = new AsyncQueue<WatchRequest>();
    const requestsEtcd = new AsyncQueue<WatchRequest>();
    const responses = watch.watch(requests, { signal: abort.signal })[Symbol.asyncIterator]();
    const responsesEtcd = direct.watch.watch(requestsEtcd, { signal: abortEtcd.signal })[Symbol.asyncIterator]();
    requests.push(create_);
    requestsEtcd.push(create_);

    const created = await nextWithin(responses, "the created response");
    const createdEtcd = await nextWithin(responsesEtcd, "etcd's created response");
    t.equal(created.created, true, "created");
    t.same(comparable(WatchResponseSchema, created), comparable(WatchResponseSchema, createdEtcd), "created response as etcd's");

    await direct.kv.put({ key: enc(prefix + "x"), value: enc("1") });
    await direct.kv.put({ key: enc(prefix + "y"), value: enc("2") });
    const events = await eventsOf(responses, 2);
    const eventsEtcd = await eventsOf(responsesEtcd, 2);
    t.same(events.map((e) => dec(e.kv!.key)), [prefix + "x", prefix + "y"], "both puts arrive in order");
    t.same(events.map((e) => toJson(EventSchema, e)), eventsEtcd.map((e) => toJson(EventSchema, e)), "events identical to etcd's");

    const cancel = create(WatchRequestSchema, { requestUnion: { case: "cancelRequest", value: { watchId: created.watchId } } });
    requests.push(cancel);
    requestsEtcd.push(create(WatchRequestSchema, { requestUnion: { case: "cancelRequest", value: { watchId: createdEtcd.watchId } } }));
    const canceled = await nextWithin(responses, "the canceled response");
    const canceledEtcd = await nextWithin(responsesEtcd, "etcd's canceled response");
    t.equal(canceled.canceled, true, "canceled");
    t.equal(canceled.watchId, created.watchId, "canceled names the watch");
    t.same(comparable(WatchResponseSchema, canceled), comparable(WatchResponseSchema, canceledEtcd), "canceled response as etcd's");
  });

  t.test(`${name}: Watch keeps running after the client half-closes`, async (t) => {
    const prefix = `h/${tag}/`;
    const abort = new AbortController();
    t.teardown(() => abort.abort());
    // etcd keeps a watch stream open after EOF on the request side (etcd's own proxy ends it, #18230).
    async function* once(): AsyncGenerator<WatchRequest> {
      yield create(WatchRequestSchema, { requestUnion: { case: "createRequest", value: { key: enc(prefix), rangeEnd: enc(prefix.slice(0, -1) + "0") } } });
    }
    const responses = watch.watch(once(), { signal: abort.signal })[Symbol.asyncIterator]();
    const created = await nextWithin(responses, "the created response");
    t.equal(created.created, true, "created");
    await direct.kv.put({ key: enc(prefix + "after-eof"), value: enc("still here") });
    const [event] = await eventsOf(responses, 1);
    t.equal(dec(event!.kv!.key), prefix + "after-eof", "the event after the half-close arrives");
    t.equal(dec(event!.kv!.value), "still here");
  });
}

/** Reads responses until `n` events arrived (etcd may batch events of consecutive revisions). */
async function eventsOf(it: AsyncIterator<WatchResponse>, n: number) {
  const events: WatchResponse["events"] = [];
  while (events.length < n) {
    const r = await nextWithin(it, `${n} events (have ${events.length})`);
    events.push(...r.events);
  }
  return events;
}
