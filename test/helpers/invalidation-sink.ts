/** An InvalidationSink for tests of the range cache's invalidation watch: every call, as a line of a log. */
import { create } from "@bufbuild/protobuf";
import { WatchResponseSchema } from "../../gen/etcdserverpb/rpc_pb.js";
import type { InvalidationSink } from "../../src/upstream/kv/cache-invalidator.js";
import type { KeyInterval } from "../../src/upstream/client/key-ranges.js";

export function recorder(): { log: string[]; sink: InvalidationSink } {
  const log: string[] = [];
  const sink: InvalidationSink = {
    enable: (rev) => log.push(`enable ${rev}`),
    disable: () => log.push("disable"),
    invalidate: (iv: KeyInterval, rev) => log.push(`invalidate ${iv.start} ${rev}`),
    advance: (rev) => log.push(`advance ${rev}`),
  };
  return { log, sink };
}

/** etcd's created answer to the invalidation watch, at revision `rev`. */
export const created = (rev: bigint) => create(WatchResponseSchema, { header: { revision: rev }, created: true });
