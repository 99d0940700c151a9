/**
 * Replies that many callers get as they are (range cache entries): their binary encoding is made once and
 * kept with them, so a cache hit costs no protobuf encoding. The profile of serializable Range showed
 * encoding the same cached answer again for every hit as a tenth of the proxy's CPU.
 *
 * A shared reply must never be changed once shared; the cache makes a new object when it must change one
 * (range-cache.ts raises the header revision on a copy). Kept in a WeakMap: an evicted entry takes its
 * encoding with it.
 */
import { toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";

/** Message → its encoding; null: shared, not encoded yet. */
const encodings = new WeakMap<object, Uint8Array | null>();

/**
 * `reply` was decoded from `bytes` and goes to clients as it is: binaryOf gives those bytes back, so an
 * answer forwarded from etcd is not encoded again (a 10,000-key Range answer cost 7 ms to encode, once per
 * caller that shared it). Whoever changes such a reply afterwards must not: upstream/client keeps etcd's
 * bytes only when no layer below the services changes answers (no --namespace).
 */
export function keepEncoding(reply: object, bytes: Uint8Array): void {
  encodings.set(reply, bytes);
}

/** Marks `reply` as one that many callers will get unchanged. */
export function shareReply(reply: object): void {
  if (!encodings.has(reply)) encodings.set(reply, null);
}

/** toBinary, made once for a shared reply. */
export function binaryOf<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): Uint8Array {
  const kept = encodings.get(message);
  if (kept) return kept;
  const bytes = toBinary(schema, message);
  if (kept === null) encodings.set(message, bytes);
  return bytes;
}
