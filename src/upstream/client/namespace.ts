/**
 * --namespace=P: the key translation. Every key the proxy sends to etcd gets P in front, every key etcd
 * answers with loses it, and no request can name a key outside P. clientv3's namespace package (kv.go,
 * watch.go, lease.go, util.go) is the model, with these differences, each on purpose:
 * - An empty key stays empty, so etcd refuses it with its own error (InvalidArgument "etcdserver: key is
 *   not provided"), as it does without a namespace. clientv3 refuses it at the top level but sends P
 *   itself for an empty key inside a Txn, which reads or writes the key P, a key no client key maps to.
 * - A watch on key "" is a watch on "\0" (etcd's own rule, v3rpc/watch.go) before P goes in front, so
 *   `\0`..`\0` stays inside P instead of taking in the key P.
 * - Election and Lock names are prefixed, and their keys too (etcd's proxy forwards them raw, so its
 *   elections and locks live outside the namespace).
 * - A key etcd answers with that is not under P is dropped, never shown. The ranges below cannot reach
 *   such a key; the check keeps "nothing outside is visible" from resting on that argument alone.
 *
 * Requests are copied, never changed: a caller may send the same request again (failover retries it on
 * the next endpoint; the range cache keys on it). Responses come fresh from the wire and belong to this
 * call alone, so they are changed in place, as clientv3 does.
 */
import type {
  Compare,
  DeleteRangeRequest,
  DeleteRangeResponse,
  LeaseTimeToLiveResponse,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  RequestOp,
  ResponseOp,
  TxnRequest,
  TxnResponse,
  WatchRequest,
  WatchResponse,
} from "../../../gen/etcdserverpb/rpc_pb.js";
import type { Event, KeyValue } from "../../../gen/mvccpb/kv_pb.js";
import type { CampaignResponse, LeaderKey, LeaderResponse } from "../../../gen/v3electionpb/v3election_pb.js";

const EMPTY = new Uint8Array(0);
const NUL = new Uint8Array([0]);
const isNul = (b: Uint8Array) => b.length === 1 && b[0] === 0;

/**
 * The first key after every key that starts with `prefix` (clientv3's prefixEnd): the last byte that is
 * not 0xff, plus one, and nothing after it. An all-0xff prefix has no such key: "\0", etcd's "no end".
 */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if (prefix[i]! < 0xff) {
      const end = prefix.slice(0, i + 1);
      end[i]!++;
      return end;
    }
  }
  return NUL;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

export class Namespace {
  /** prefixEnd(prefix): range_end "\0" ("to the end of the keyspace") becomes this. */
  readonly end: Uint8Array;

  constructor(readonly prefix: Uint8Array) {
    if (prefix.length === 0) throw new Error("an empty namespace is no namespace: do not wrap");
    this.end = prefixEnd(prefix);
  }

  /** A key: P + key; an empty key stays empty, for etcd to refuse. */
  key(key: Uint8Array): Uint8Array {
    return key.length === 0 ? EMPTY : concat(this.prefix, key);
  }

  /** A range_end: empty stays empty (one key), "\0" becomes the end of P, any other is P + range_end. */
  rangeEnd(end: Uint8Array): Uint8Array {
    if (end.length === 0) return EMPTY;
    return isNul(end) ? this.end : concat(this.prefix, end);
  }

  /** An Election or Lock name: always prefixed (an empty name is valid there: keys "P/<lease>"). */
  name(name: Uint8Array): Uint8Array {
    return concat(this.prefix, name);
  }

  /** The client's key for an etcd key; undefined when it is not under P (never shown). */
  strip(key: Uint8Array): Uint8Array | undefined {
    const p = this.prefix;
    if (key.length < p.length) return undefined;
    for (let i = 0; i < p.length; i++) if (key[i] !== p[i]) return undefined;
    return key.subarray(p.length);
  }

  // Requests: copies with every key and range prefixed.

  rangeRequest(r: RangeRequest): RangeRequest {
    return { ...r, key: this.key(r.key), rangeEnd: this.rangeEnd(r.rangeEnd) };
  }

  putRequest(r: PutRequest): PutRequest {
    return { ...r, key: this.key(r.key) };
  }

  deleteRangeRequest(r: DeleteRangeRequest): DeleteRangeRequest {
    return { ...r, key: this.key(r.key), rangeEnd: this.rangeEnd(r.rangeEnd) };
  }

  /**
   * Compares and the ops of both branches, nested txns included. Recursive: a request decoded from the
   * wire is at most ~49 txns deep (protobuf-es stops at 100 message levels), and one too deep for the
   * stack here is too deep for toBinary too; either way the call fails, the proxy does not.
   */
  txnRequest(r: TxnRequest): TxnRequest {
    return {
      ...r,
      compare: r.compare.map((c): Compare => ({ ...c, key: this.key(c.key), rangeEnd: this.rangeEnd(c.rangeEnd) })),
      success: r.success.map((op) => this.requestOp(op)),
      failure: r.failure.map((op) => this.requestOp(op)),
    };
  }

  private requestOp(op: RequestOp): RequestOp {
    const r = op.request;
    switch (r.case) {
      case "requestRange": return { ...op, request: { case: r.case, value: this.rangeRequest(r.value) } };
      case "requestPut": return { ...op, request: { case: r.case, value: this.putRequest(r.value) } };
      case "requestDeleteRange": return { ...op, request: { case: r.case, value: this.deleteRangeRequest(r.value) } };
      case "requestTxn": return { ...op, request: { case: r.case, value: this.txnRequest(r.value) } };
      default: return op; // no op: etcd answers it as it would anyway
    }
  }

  /** A create gets its key and range prefixed (key "" is "\0", as etcd reads it); cancel and progress pass. */
  watchRequest(r: WatchRequest): WatchRequest {
    const u = r.requestUnion;
    if (u.case !== "createRequest") return r;
    const c = u.value;
    const value = { ...c, key: this.key(c.key.length === 0 ? NUL : c.key), rangeEnd: this.rangeEnd(c.rangeEnd) };
    return { ...r, requestUnion: { case: u.case, value } };
  }

  /** Proclaim and Resign name the leader by its name and key. */
  leaderKey(k: LeaderKey | undefined): LeaderKey | undefined {
    return k && { ...k, name: this.name(k.name), key: this.key(k.key) };
  }

  // Responses: changed in place, keys stripped, anything outside P dropped.

  keyValue(kv: KeyValue | undefined): KeyValue | undefined {
    if (!kv) return undefined;
    const key = this.strip(kv.key);
    if (!key) return undefined;
    kv.key = key;
    return kv;
  }

  /** Keys stripped; a key outside P is left out (count stays etcd's: it counts what the range held). */
  keyValues(kvs: KeyValue[]): KeyValue[] {
    return kvs.filter((kv) => this.keyValue(kv) !== undefined);
  }

  rangeResponse(r: RangeResponse): RangeResponse {
    r.kvs = this.keyValues(r.kvs);
    return r;
  }

  putResponse(r: PutResponse): PutResponse {
    r.prevKv = this.keyValue(r.prevKv);
    return r;
  }

  deleteRangeResponse(r: DeleteRangeResponse): DeleteRangeResponse {
    r.prevKvs = this.keyValues(r.prevKvs);
    return r;
  }

  txnResponse(r: TxnResponse): TxnResponse {
    for (const op of r.responses) this.responseOp(op);
    return r;
  }

  private responseOp(op: ResponseOp): void {
    const r = op.response;
    switch (r.case) {
      case "responseRange": this.rangeResponse(r.value); break;
      case "responsePut": this.putResponse(r.value); break;
      case "responseDeleteRange": this.deleteRangeResponse(r.value); break;
      case "responseTxn": this.txnResponse(r.value); break;
    }
  }

  /** Events of keys under P, stripped; prev_kv is of the same key (clientv3 sets it to the stripped key). */
  watchResponse(r: WatchResponse): WatchResponse {
    if (r.events.length === 0) return r;
    r.events = r.events.filter((ev: Event) => {
      if (ev.kv && !this.keyValue(ev.kv)) return false;
      if (ev.prevKv && !this.keyValue(ev.prevKv)) ev.prevKv = undefined;
      return true;
    });
    return r;
  }

  /** The keys attached to a lease: those under P, stripped (leases themselves are not namespaced). */
  leaseTimeToLiveResponse(r: LeaseTimeToLiveResponse): LeaseTimeToLiveResponse {
    if (r.keys.length === 0) return r;
    const keys: Uint8Array[] = [];
    for (const k of r.keys) {
      const key = this.strip(k);
      if (key) keys.push(key);
    }
    r.keys = keys;
    return r;
  }

  campaignResponse(r: CampaignResponse): CampaignResponse {
    if (r.leader) {
      r.leader.name = this.strip(r.leader.name) ?? EMPTY;
      r.leader.key = this.strip(r.leader.key) ?? EMPTY;
    }
    return r;
  }

  /** Leader and each Observe answer: the leader's key-value. */
  leaderResponse(r: LeaderResponse): LeaderResponse {
    r.kv = this.keyValue(r.kv);
    return r;
  }

  /** A Lock answer's key, the one Unlock takes back (prefixed again by key()). */
  lockKey(key: Uint8Array): Uint8Array {
    return this.strip(key) ?? EMPTY;
  }
}
