/**
 * The same few KV calls and a prefix watch, over each way a client reaches the proxy (gRPC, gRPC-Web,
 * Connect binary and JSON through connect-node, etcd's JSON gateway through fetch) or etcd itself, reduced
 * to what the robustness test records: values, revisions, and whether a call failed.
 */
import { create } from "@bufbuild/protobuf";
import { Compare_CompareResult, Compare_CompareTarget, KV, Watch, WatchRequestSchema, type WatchRequest } from "../../gen/etcdserverpb/rpc_pb.js";
import { Event_EventType } from "../../gen/mvccpb/kv_pb.js";
import { clientFor, dec, enc, type ProtocolName } from "../helpers/clients.js";
import { openStream } from "../helpers/gateway.js";
import { AsyncQueue } from "../helpers/streams.js";

export type DoorName = ProtocolName | "gateway";

/** A key's value as read, with the revision it was written at; value undefined: absent. */
export interface Read { value: string | undefined; modRevision: bigint }

export interface Door {
  name: DoorName;
  put(key: string, value: string): Promise<bigint>;
  del(key: string): Promise<bigint>;
  get(key: string, serializable: boolean): Promise<Read>;
  /** A Txn: if the key's value is `expect` put `value`, else read the key. */
  cas(key: string, expect: string, value: string): Promise<{ succeeded: boolean; revision: bigint; read: Read }>;
}

/** One deadline for every call: long enough for a failover, short enough to make progress during a fault. */
export const CALL_TIMEOUT_MS = 3000;

export function prefixEnd(prefix: string): Uint8Array {
  const b = enc(prefix);
  b[b.length - 1]!++;
  return b;
}

export function connectDoor(protocol: ProtocolName, url: string): Door {
  const kv = clientFor(KV, protocol, url);
  const o = { timeoutMs: CALL_TIMEOUT_MS };
  return {
    name: protocol,
    put: async (key, value) => (await kv.put({ key: enc(key), value: enc(value) }, o)).header!.revision,
    del: async (key) => (await kv.deleteRange({ key: enc(key) }, o)).header!.revision,
    async get(key, serializable) {
      const kvs = (await kv.range({ key: enc(key), serializable }, o)).kvs;
      return kvs[0] ? { value: dec(kvs[0].value), modRevision: kvs[0].modRevision } : { value: undefined, modRevision: 0n };
    },
    async cas(key, expect, value) {
      const r = await kv.txn({
        compare: [{ key: enc(key), result: Compare_CompareResult.EQUAL, target: Compare_CompareTarget.VALUE, targetUnion: { case: "value", value: enc(expect) } }],
        success: [{ request: { case: "requestPut", value: { key: enc(key), value: enc(value) } } }],
        failure: [{ request: { case: "requestRange", value: { key: enc(key) } } }],
      }, o);
      const res = r.responses[0]?.response;
      const kvs = res?.case === "responseRange" ? res.value.kvs : [];
      const read: Read = kvs[0] ? { value: dec(kvs[0].value), modRevision: kvs[0].modRevision } : { value: undefined, modRevision: 0n };
      return { succeeded: r.succeeded, revision: r.header!.revision, read };
    },
  };
}

const b64 = (s: string) => Buffer.from(s).toString("base64");
const unb64 = (s: string | undefined) => Buffer.from(s ?? "", "base64").toString();

interface JsonKv { value?: string; mod_revision?: string }

async function post(url: string, path: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(url + path, { method: "POST", body: JSON.stringify(body), signal: AbortSignal.timeout(CALL_TIMEOUT_MS) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${path}: HTTP ${res.status} ${text}`);
  return JSON.parse(text) as Record<string, unknown>;
}

const revisionOf = (r: Record<string, unknown>) => BigInt((r["header"] as { revision: string }).revision);
const readOf = (kvs: JsonKv[] | undefined): Read => kvs?.[0] ? { value: unb64(kvs[0].value), modRevision: BigInt(kvs[0].mod_revision ?? "0") } : { value: undefined, modRevision: 0n };

export function gatewayDoor(url: string): Door {
  return {
    name: "gateway",
    put: async (key, value) => revisionOf(await post(url, "/v3/kv/put", { key: b64(key), value: b64(value) })),
    del: async (key) => revisionOf(await post(url, "/v3/kv/deleterange", { key: b64(key) })),
    get: async (key, serializable) => readOf((await post(url, "/v3/kv/range", { key: b64(key), serializable })).kvs as JsonKv[] | undefined),
    async cas(key, expect, value) {
      const r = await post(url, "/v3/kv/txn", {
        compare: [{ key: b64(key), target: "VALUE", result: "EQUAL", value: b64(expect) }],
        success: [{ request_put: { key: b64(key), value: b64(value) } }],
        failure: [{ request_range: { key: b64(key) } }],
      });
      const responses = r["responses"] as { response_range?: { kvs?: JsonKv[] } }[] | undefined;
      return { succeeded: r["succeeded"] === true, revision: revisionOf(r), read: readOf(responses?.[0]?.response_range?.kvs) };
    },
  };
}

export interface WatchEvent { revision: bigint; key: string; type: "PUT" | "DELETE"; value: string }

/** A prefix watch from `startRevision`: events as they come, and how it ended (if it did). */
export interface PrefixWatch {
  door: DoorName;
  events: WatchEvent[];
  created: Promise<void>;
  /** Set when the stream ended or failed while we still watched. */
  ended?: string;
  close(): void;
}

export function watchPrefix(door: DoorName, url: string, prefix: string, startRevision: bigint): PrefixWatch {
  return door === "gateway" ? gatewayWatch(url, prefix, startRevision) : connectWatch(door, url, prefix, startRevision);
}

function connectWatch(protocol: ProtocolName, url: string, prefix: string, startRevision: bigint): PrefixWatch {
  const requests = new AsyncQueue<WatchRequest>();
  const abort = new AbortController();
  let createdNow!: () => void;
  const w: PrefixWatch = { door: protocol, events: [], created: new Promise((r) => { createdNow = r; }), close: () => { requests.end(); abort.abort(); } };
  requests.push(create(WatchRequestSchema, { requestUnion: { case: "createRequest", value: { key: enc(prefix), rangeEnd: prefixEnd(prefix), startRevision } } }));
  void (async () => {
    try {
      for await (const r of clientFor(Watch, protocol, url).watch(requests, { signal: abort.signal })) {
        if (r.created) createdNow();
        if (r.canceled) w.ended = `canceled: ${r.cancelReason}`;
        for (const e of r.events) w.events.push({ revision: e.kv!.modRevision, key: dec(e.kv!.key), type: e.type === Event_EventType.DELETE ? "DELETE" : "PUT", value: dec(e.kv!.value) });
      }
      if (!abort.signal.aborted) w.ended ??= "the stream ended";
    } catch (err) {
      if (!abort.signal.aborted) w.ended = `failed: ${String(err)}`;
    }
  })();
  return w;
}

function gatewayWatch(url: string, prefix: string, startRevision: bigint): PrefixWatch {
  let createdNow!: () => void;
  let abort = () => {};
  let closed = false;
  const w: PrefixWatch = { door: "gateway", events: [], created: new Promise((r) => { createdNow = r; }), close: () => { closed = true; abort(); } };
  const body = JSON.stringify({ create_request: { key: b64(prefix), range_end: Buffer.from(prefixEnd(prefix)).toString("base64"), start_revision: String(startRevision) } });
  void (async () => {
    try {
      const s = await openStream(url, "/v3/watch", body);
      abort = s.abort;
      if (closed) s.abort();
      if (s.status !== 200) throw new Error(`HTTP ${s.status}`);
      for (;;) {
        const line = JSON.parse(await s.lines.next("a watch response", 3_600_000)) as { result?: { created?: boolean; canceled?: boolean; cancel_reason?: string; events?: { type?: string; kv: { key: string; value?: string; mod_revision: string } }[] }; error?: unknown };
        if (line.error) throw new Error(JSON.stringify(line.error));
        const r = line.result!;
        if (r.created) createdNow();
        if (r.canceled) w.ended = `canceled: ${r.cancel_reason}`;
        for (const e of r.events ?? []) w.events.push({ revision: BigInt(e.kv.mod_revision), key: unb64(e.kv.key), type: e.type === "DELETE" ? "DELETE" : "PUT", value: unb64(e.kv.value) });
      }
    } catch (err) {
      if (!closed) w.ended = `failed: ${String(err)}`;
    }
  })();
  return w;
}
