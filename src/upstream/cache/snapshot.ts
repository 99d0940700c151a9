/**
 * What a cached prefix asks etcd when it (re)starts: the whole prefix at one revision, and whether etcd
 * compacted past the cache's revision while it was away.
 */
import type { ResponseHeader } from "../../../gen/etcdserverpb/rpc_pb.js";
import { EtcdMessages } from "../../wire/errors.js";
import { keyString } from "../client/key-ranges.js";
import type { Upstream } from "../client/upstream.js";
import { progressAnswersOrdered } from "./etcd-version.js";
import type { KeyStore } from "./key-store.js";

/** Keys per snapshot page: a page is a few MiB for usual values, far from any message limit. */
const SNAPSHOT_PAGE = 5_000n;

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
    for (const kv of page.kvs) store.set(keyString(kv.key), kv);
    if (store.bytes > maxBytes) throw new Error(`the prefix holds more than ${maxBytes} bytes (--watch-cache bound)`);
    if (!page.more || page.kvs.length === 0) break;
    from = new Uint8Array([...page.kvs[page.kvs.length - 1]!.key, 0]);
  }
  return { rev: at, header, progressSafe: progressAnswersOrdered(status.version) };
}

/**
 * Whether etcd compacted past rev+1 while the cache was away. Asked before watching again, because etcd
 * answers such a watch with created first and the compaction cancel only later: the cache would look
 * live in between.
 */
export async function compactedPast(up: Upstream, key: Uint8Array, rangeEnd: Uint8Array, rev: bigint): Promise<boolean> {
  try {
    await up.unary(undefined, (c, o) => c.kv.range({ key, rangeEnd, revision: rev + 1n, serializable: true, countOnly: true }, o), { readOnly: true });
    return false;
  } catch (err) {
    if (String(err).includes(EtcdMessages.compacted)) return true;
    if (String(err).includes(EtcdMessages.futureRev)) return false;
    throw err;
  }
}
