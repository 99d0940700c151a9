/**
 * The requests every workload sends, encoded once: the hot loop writes the same bytes again and again, so
 * the generator's cost per call is the HTTP/2 stream, not protobuf.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  Compare_CompareResult, Compare_CompareTarget, CompactionRequestSchema, LeaseGrantRequestSchema, LeaseGrantResponseSchema,
  LeaseKeepAliveRequestSchema, LeaseRevokeRequestSchema, PutRequestSchema, RangeRequestSchema, RangeResponseSchema, TxnRequestSchema,
  WatchRequestSchema,
} from "../../gen/etcdserverpb/rpc_pb.js";
import { frame } from "./grpc-frame.js";

export const PATH = {
  range: "/etcdserverpb.KV/Range",
  put: "/etcdserverpb.KV/Put",
  txn: "/etcdserverpb.KV/Txn",
  compact: "/etcdserverpb.KV/Compact",
  watch: "/etcdserverpb.Watch/Watch",
  leaseGrant: "/etcdserverpb.Lease/LeaseGrant",
  leaseRevoke: "/etcdserverpb.Lease/LeaseRevoke",
  leaseKeepAlive: "/etcdserverpb.Lease/LeaseKeepAlive",
} as const;

const enc = (s: string) => new TextEncoder().encode(s);

/** The key every Range workload reads; seeded once with a value of HOT_VALUE_BYTES. */
export const HOT_KEY = "bench/hot";
export const HOT_VALUE_BYTES = 128;
/** The key every watcher of the fan-out workloads watches. */
export const WATCH_KEY = "bench/watch";

export const rangeRequest = (serializable: boolean) =>
  frame(toBinary(RangeRequestSchema, create(RangeRequestSchema, { key: enc(HOT_KEY), serializable })));

/** The keys of the many-keys Range row: MANY_KEYS keys, each read at random (no two callers share a read for long). */
export const MANY_KEYS = 1000;
export const manyKey = (i: number) => `bench/many/${String(i).padStart(4, "0")}`;
export const MANY_VALUE_BYTES = 128;
/** The list rows: LIST_KEYS keys under LIST_PREFIX, read whole (etcd-edge keeps the prefix in its watch cache). */
export const LIST_PREFIX = "bench/list/";
export const LIST_END = "bench/list0";
export const LIST_KEYS = 2000;
export const listKey = (i: number) => `${LIST_PREFIX}${String(i).padStart(4, "0")}`;
export const LIST_VALUE_BYTES = 64;
/** The watch-history row writes its revisions here (also a watch-cache prefix of etcd-edge). */
export const HIST_PREFIX = "bench/hist/";
export const HIST_END = "bench/hist0";
export const rangeKeyRequest = (key: string, serializable: boolean) =>
  frame(toBinary(RangeRequestSchema, create(RangeRequestSchema, { key: enc(key), serializable })));

export const putRequest = (key: string, value: Uint8Array) =>
  frame(toBinary(PutRequestSchema, create(PutRequestSchema, { key: enc(key), value })));

/** `count` Puts of 32-byte values over `count` distinct keys, so etcd's store does not see one hot key. */
export function putRequests(count: number): Buffer[] {
  const value = new Uint8Array(32).fill(0x61);
  return Array.from({ length: count }, (_, i) => putRequest(`bench/put/${i}`, value));
}

/** The key a compare-and-swap slot owns; seeded with CAS_VALUE before the workload. */
export const casKey = (slot: number) => `bench/cas/${slot}`;
export const CAS_VALUE = enc("v1");

/**
 * Compare-and-swap as clients write it: if value(key) == v1 then put(key, v1) else get(key). The value
 * never changes, so every Txn takes the success branch and writes: the request can be encoded once.
 */
export function casRequest(slot: number): Buffer {
  const key = enc(casKey(slot));
  return frame(toBinary(TxnRequestSchema, create(TxnRequestSchema, {
    compare: [{ key, result: Compare_CompareResult.EQUAL, target: Compare_CompareTarget.VALUE, targetUnion: { case: "value", value: CAS_VALUE } }],
    success: [{ request: { case: "requestPut", value: { key, value: CAS_VALUE } } }],
    failure: [{ request: { case: "requestRange", value: { key } } }],
  })));
}

/** A watch on WATCH_KEY from the current revision, as clientv3's Watch(ctx, key) asks. */
export const watchCreateRequest = () =>
  frame(toBinary(WatchRequestSchema, create(WatchRequestSchema, { requestUnion: { case: "createRequest", value: { key: enc(WATCH_KEY) } } })));

export const leaseGrantRequest = (ttlSeconds: number) =>
  frame(toBinary(LeaseGrantRequestSchema, create(LeaseGrantRequestSchema, { TTL: BigInt(ttlSeconds) })));

export const leaseGrantId = (reply: Buffer) => fromBinary(LeaseGrantResponseSchema, reply).ID;

export const leaseRevokeRequest = (id: bigint) => frame(toBinary(LeaseRevokeRequestSchema, create(LeaseRevokeRequestSchema, { ID: id })));

export const leaseKeepAliveRequest = (id: bigint) => frame(toBinary(LeaseKeepAliveRequestSchema, create(LeaseKeepAliveRequestSchema, { ID: id })));

export const compactRequest = (revision: bigint) => frame(toBinary(CompactionRequestSchema, create(CompactionRequestSchema, { revision })));

/** What a Range reply says: the store revision and the first key's value (to check a target answers right). */
export function rangeReply(reply: Buffer): { revision: bigint; key: string; valueBytes: number } {
  const r = fromBinary(RangeResponseSchema, reply);
  const kv = r.kvs[0];
  return { revision: r.header?.revision ?? 0n, key: kv ? new TextDecoder().decode(kv.key) : "", valueBytes: kv?.value.length ?? 0 };
}
