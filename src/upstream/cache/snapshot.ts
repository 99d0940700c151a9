/**
 * What a cached prefix asks etcd when it (re)starts: the whole prefix at one revision, and whether etcd
 * compacted past the cache's revision while it was away.
 */
import { create } from "@bufbuild/protobuf";
import type { ResponseHeader } from "../../../gen/etcdserverpb/rpc_pb.js";
import { KeyValueSchema, type KeyValue } from "../../../gen/mvccpb/kv_pb.js";
import { EtcdMessages } from "../../wire/errors.js";
import { keyString } from "../client/key-ranges.js";
import type { Upstream } from "../client/upstream.js";
import { progressAnswersOrdered } from "./etcd-version.js";
import type { KeyStore } from "./key-store.js";

/** Keys per snapshot page: a page is a few MiB for usual values, far from any message limit. */
const SNAPSHOT_PAGE = 5_000n;

/** The prefix outgrew the store's bound: retried only after a long pause (it is a full read of the prefix). */
export class TooLarge extends Error {}

/**
 * A KeyValue with bytes of its own. protobuf-es decodes bytes fields as views into the message's buffer,
 * so a key kept from an answer or an event would keep that whole answer (every other key, every prev_kv)
 * in memory for as long as the key lives in the store.
 */
export function ownCopy(kv: KeyValue): KeyValue {
  return create(KeyValueSchema, { key: kv.key.slice(), value: kv.value.slice(), createRevision: kv.createRevision, modRevision: kv.modRevision, version: kv.version, lease: kv.lease });
}

export interface Snapshot {
  rev: bigint;
  header: ResponseHeader | undefined;
  /** Whether this etcd orders progress answers with events (etcd-version.ts). */
  progressSafe: boolean;
}

/**
 * Fills `store` with the prefix at the revision of the first page (later pages are read at that
 * revision), and fails once the keys pass `maxBytes`.
 */
export async function takeSnapshot(up: Upstream, key: Uint8Array, rangeEnd: Uint8Array, store: KeyStore, maxBytes: number): Promise<Snapshot> {
  const status = await up.unary(undefined, (c, o) => c.maintenance.status({}, o), { readOnly: true });
  store.clear();
  let from = key;
  let at = 0n;
  let header: ResponseHeader | undefined;
  for (;;) {
    const page = await up.unary(undefined, (c, o) => c.kv.range({ key: from, rangeEnd, limit: SNAPSHOT_PAGE, revision: at }, o), { readOnly: true });
    if (at === 0n) {
      at = page.header?.revision ?? 0n;
      header = page.header;
    }
    for (const kv of page.kvs) store.set(keyString(kv.key), ownCopy(kv));
    if (store.bytes > maxBytes) {
      store.clear();
      throw new TooLarge(`the prefix holds more than ${maxBytes} bytes (the watch cache's bound)`);
    }
    if (!page.more || page.kvs.length === 0) break;
    from = new Uint8Array([...page.kvs[page.kvs.length - 1]!.key, 0]);
  }
  return { rev: at, header, progressSafe: progressAnswersOrdered(status.version) };
}

/**
 * Whether the cache may watch again from rev+1 after a break, keeping what it holds: etcd is the same
 * cluster, has not gone back below rev (a restore from an older backup, a new cluster on the same URL),
 * and has not compacted past rev+1 (etcd answers such a watch with created first and the compaction
 * cancel only later: the cache would look live in between). Also says whether the member answering
 * orders progress answers (it may be another member than before: failover, a rolling upgrade).
 */
export async function resumable(up: Upstream, key: Uint8Array, rangeEnd: Uint8Array, rev: bigint, clusterId: bigint | undefined): Promise<{ ok: boolean; progressSafe: boolean }> {
  const status = await up.unary(undefined, (c, o) => c.maintenance.status({}, o), { readOnly: true });
  const progressSafe = progressAnswersOrdered(status.version);
  if (clusterId && status.header?.clusterId !== clusterId) return { ok: false, progressSafe };
  const head = await up.unary(undefined, (c, o) => c.kv.range({ key, rangeEnd, countOnly: true }, o), { readOnly: true });
  if ((head.header?.revision ?? 0n) < rev) return { ok: false, progressSafe };
  try {
    await up.unary(undefined, (c, o) => c.kv.range({ key, rangeEnd, revision: rev + 1n, serializable: true, countOnly: true }, o), { readOnly: true });
    return { ok: true, progressSafe };
  } catch (err) {
    if (String(err).includes(EtcdMessages.compacted)) return { ok: false, progressSafe };
    if (String(err).includes(EtcdMessages.futureRev)) return { ok: true, progressSafe };
    throw err;
  }
}
