/**
 * --namespace=P: one endpoint's etcd clients with KV, Watch, Lease, Election and Lock behind the key
 * translation of namespace.ts; Cluster, Maintenance and Auth pass through (they name no keys). Upstream
 * applies it to every endpoint's clients, so every call of the proxy to etcd goes through it.
 *
 * It sits below the range cache, single-flight and the watch and lease hubs: they see the keys clients
 * send and get, never P. One proxy has one namespace, so their keys never mix, and the cache's
 * invalidation watch (`\0`..`\0` through this Watch client) covers exactly P and reports un-prefixed
 * keys, the keys the cache holds. etcd's proxy stacks its cache above the namespace the same way.
 */
import { create, isMessage, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import {
  DeleteRangeRequestSchema,
  PutRequestSchema,
  RangeRequestSchema,
  TxnRequestSchema,
  WatchRequestSchema,
  type KV,
  type Lease,
  type Watch,
} from "../../../gen/etcdserverpb/rpc_pb.js";
import {
  CampaignRequestSchema,
  LeaderRequestSchema,
  ProclaimRequestSchema,
  ResignRequestSchema,
  type Election,
} from "../../../gen/v3electionpb/v3election_pb.js";
import { LockRequestSchema, UnlockRequestSchema, type Lock } from "../../../gen/v3lockpb/v3lock_pb.js";
import type { EtcdClients } from "./clients.js";
import { Namespace } from "./namespace.js";

/** `clients` with every key under `prefix` (non-empty). */
export function namespacedClients<C extends EtcdClients>(clients: C, prefix: Uint8Array): C {
  const ns = new Namespace(prefix);
  const { kv, watch, lease, election, lock } = clients;
  const nsKv: Client<typeof KV> = {
    ...kv,
    range: async (req, o) => ns.rangeResponse(await kv.range(ns.rangeRequest(message(RangeRequestSchema, req)), o)),
    put: async (req, o) => ns.putResponse(await kv.put(ns.putRequest(message(PutRequestSchema, req)), o)),
    deleteRange: async (req, o) => ns.deleteRangeResponse(await kv.deleteRange(ns.deleteRangeRequest(message(DeleteRangeRequestSchema, req)), o)),
    txn: async (req, o) => ns.txnResponse(await kv.txn(ns.txnRequest(message(TxnRequestSchema, req)), o)),
    // compact: a revision, no key.
  };
  const nsWatch: Client<typeof Watch> = {
    ...watch,
    watch: (requests, o) => mapStream(
      watch.watch(mapStream(requests, (r) => ns.watchRequest(message(WatchRequestSchema, r))), o),
      (r) => ns.watchResponse(r),
    ),
  };
  const nsLease: Client<typeof Lease> = {
    ...lease,
    // Grant, Revoke, KeepAlive and Leases name leases, which are not namespaced (as in clientv3).
    leaseTimeToLive: async (req, o) => ns.leaseTimeToLiveResponse(await lease.leaseTimeToLive(req, o)),
  };
  const nsElection: Client<typeof Election> = {
    ...election,
    campaign: async (req, o) => {
      const r = message(CampaignRequestSchema, req);
      return ns.campaignResponse(await election.campaign({ ...r, name: ns.name(r.name) }, o));
    },
    proclaim: (req, o) => {
      const r = message(ProclaimRequestSchema, req);
      return election.proclaim({ ...r, leader: ns.leaderKey(r.leader) }, o);
    },
    leader: async (req, o) => {
      const r = message(LeaderRequestSchema, req);
      return ns.leaderResponse(await election.leader({ ...r, name: ns.name(r.name) }, o));
    },
    observe: (req, o) => {
      const r = message(LeaderRequestSchema, req);
      return mapStream(election.observe({ ...r, name: ns.name(r.name) }, o), (res) => ns.leaderResponse(res));
    },
    resign: (req, o) => {
      const r = message(ResignRequestSchema, req);
      return election.resign({ ...r, leader: ns.leaderKey(r.leader) }, o);
    },
  };
  const nsLock: Client<typeof Lock> = {
    ...lock,
    lock: async (req, o) => {
      const r = message(LockRequestSchema, req);
      const res = await lock.lock({ ...r, name: ns.name(r.name) }, o);
      res.key = ns.lockKey(res.key);
      return res;
    },
    unlock: (req, o) => {
      const r = message(UnlockRequestSchema, req);
      return lock.unlock({ ...r, key: ns.key(r.key) }, o);
    },
  };
  return { ...clients, kv: nsKv, watch: nsWatch, lease: nsLease, election: nsElection, lock: nsLock };
}

/** The request as a whole message (callers may pass an init shape: `{ key, countOnly: true }`). */
function message<D extends DescMessage>(schema: D, init: MessageInitShape<D>): MessageShape<D> {
  return (isMessage(init, schema) ? init : create(schema, init)) as MessageShape<D>;
}

/**
 * A stream with each message mapped. A hand-written iterator, not an async generator: `return` and
 * `throw` reach the source at once even while a `next` waits (a generator would queue them behind it),
 * so a transport that aborts a stream still ends the PushQueue under it (push-queue.ts).
 */
function mapStream<A, B>(source: AsyncIterable<A>, map: (a: A) => B): AsyncIterable<B> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<B> {
      const it = source[Symbol.asyncIterator]();
      return {
        next: async () => {
          const r = await it.next();
          return r.done ? r : { done: false, value: map(r.value) };
        },
        return: async (value?: unknown) => (it.return ? await it.return(value) : { done: true, value }) as IteratorResult<B>,
        throw: async (err?: unknown) => {
          if (it.throw) return (await it.throw(err)) as IteratorResult<B>;
          await it.return?.();
          throw err;
        },
      };
    },
  };
}
