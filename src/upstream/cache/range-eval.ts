/**
 * A RangeRequest answered over the keys of one revision, as etcd's applier answers it (etcdserver/apply.go
 * Range, 3.4 and 3.5): count is every key of the range before the revision filters; the min/max mod and
 * create revision filters prune; a sort by key orders; limit truncates and sets `more`; keys_only drops
 * values; count_only returns no keys.
 *
 * Sorting by version, create, mod revision or value is not answered here: etcd sorts with Go's unstable
 * sort.Sort, so keys that tie come out in an order only Go's algorithm reproduces. Those go to etcd.
 */
import { create } from "@bufbuild/protobuf";
import { RangeRequest_SortOrder, RangeRequest_SortTarget, type RangeRequest } from "../../../gen/etcdserverpb/rpc_pb.js";
import { KeyValueSchema, type KeyValue } from "../../../gen/mvccpb/kv_pb.js";

export interface RangeAnswer {
  kvs: KeyValue[];
  count: bigint;
  more: boolean;
}

/** Whether the answer can come from here (see the file comment). */
export function answerable(req: RangeRequest): boolean {
  return req.sortTarget === RangeRequest_SortTarget.KEY;
}

/** `kvs`: the range's keys at the revision read, in key order. Never changes them (they are shared). */
export function evaluate(req: RangeRequest, kvs: KeyValue[]): RangeAnswer {
  const count = BigInt(kvs.length);
  if (req.countOnly) return { kvs: [], count, more: false };
  let out = kvs;
  const filtered = req.maxModRevision !== 0n || req.minModRevision !== 0n || req.maxCreateRevision !== 0n || req.minCreateRevision !== 0n;
  if (filtered) {
    out = out.filter((kv) =>
      !(req.maxModRevision !== 0n && kv.modRevision > req.maxModRevision) &&
      !(req.minModRevision !== 0n && kv.modRevision < req.minModRevision) &&
      !(req.maxCreateRevision !== 0n && kv.createRevision > req.maxCreateRevision) &&
      !(req.minCreateRevision !== 0n && kv.createRevision < req.minCreateRevision));
  }
  // Keys are unique and already ascending: ASCEND and NONE keep the order, DESCEND reverses it.
  if (req.sortOrder === RangeRequest_SortOrder.DESCEND) out = out === kvs ? [...out].reverse() : out.reverse();
  let more = false;
  if (req.limit > 0n && BigInt(out.length) > req.limit) {
    out = out.slice(0, Number(req.limit));
    more = true;
  }
  if (req.keysOnly) out = out.map((kv) => create(KeyValueSchema, { ...kv, value: new Uint8Array(0) }));
  return { kvs: out, count, more };
}
