/** v3lockpb.Lock: forwarded; Lock blocks until acquired, bounded by the caller's deadline. */
import type { ServiceImpl } from "@connectrpc/connect";
import type { Lock } from "../../gen/v3lockpb/v3lock_pb.js";
import type { Upstream } from "../upstream/client/upstream.js";

export function lockService(up: Upstream): ServiceImpl<typeof Lock> {
  return {
    lock: (req, ctx) => up.unary(ctx, (c, o) => c.lock.lock(req, o), { readOnly: false }),
    unlock: (req, ctx) => up.unary(ctx, (c, o) => c.lock.unlock(req, o), { readOnly: false }),
  };
}
