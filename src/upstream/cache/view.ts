/**
 * The keys of a cached prefix as they were at a past revision: the current keys with every later change
 * undone through its prev_kv (history.ts undo), in key order.
 */
import type { KeyValue } from "../../../gen/mvccpb/kv_pb.js";
import { keyString, type KeyInterval } from "../client/key-ranges.js";
import type { History } from "./history.js";
import type { KeyStore } from "./key-store.js";

/** `at` undefined: the current keys. The caller checks `at` is within the history (>= its floor). */
export function viewAt(store: KeyStore, history: History, at: bigint | undefined, iv: KeyInterval): KeyValue[] {
  const now = store.scan(iv);
  if (at === undefined) return now;
  const before = history.undo(at, iv);
  if (before.size === 0) return now;
  const merged = new Map<string, KeyValue>();
  for (const kv of now) merged.set(keyString(kv.key), kv);
  for (const [k, kv] of before) {
    if (kv) merged.set(k, kv);
    else merged.delete(k);
  }
  return [...merged.keys()].sort().map((k) => merged.get(k)!);
}
