/**
 * One-shot keep-alives, as `etcdctl lease keep-alive --once` does them: open a LeaseKeepAlive stream, send
 * one keep-alive, read the reply, cancel the stream. A closed loop of those; each slot has its own lease.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { LeaseKeepAliveResponseSchema } from "../../gen/etcdserverpb/rpc_pb.js";
import { bidi } from "./grpc-raw.js";
import { grantLeases, revokeLeases } from "./lease-grants.js";
import { leaseKeepAliveRequest, PATH } from "./messages.js";
import type { Task } from "./protocol.js";
import { SessionPool } from "./sessions.js";
import type { CallerSet } from "./unary-callers.js";

type OneShotTask = Extract<Task, { kind: "lease-oneshot" }>;

export async function oneShotCaller(t: OneShotTask): Promise<CallerSet> {
  const etcd = await SessionPool.open(t.etcdUrl, 1);
  let pool: SessionPool | undefined;
  let ids: bigint[] = [];
  try {
    pool = await SessionPool.open(t.url, t.connections);
    ids = await grantLeases(etcd.get(0), t.concurrency, t.ttlSeconds);
  } catch (err) {
    etcd.close();
    pool?.close();
    throw err;
  }
  const sessions = pool;
  const requests = ids.map((id) => leaseKeepAliveRequest(id));
  return {
    call: (slot, done) => {
      let settled = false;
      const settle = (error: string | undefined) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        stream.cancel();
        done(error);
      };
      const timer = setTimeout(() => settle(`no reply within ${t.timeoutMs} ms`), t.timeoutMs);
      const stream = bidi(sessions.get(slot), PATH.leaseKeepAlive, (m) => {
        const ttl = fromBinary(LeaseKeepAliveResponseSchema, m).TTL;
        settle(ttl > 0n ? undefined : `keep-alive answered TTL ${ttl}`);
      }, (err) => settle(err ?? "stream ended without a reply"));
      stream.send(requests[(slot - t.slotOffset) % requests.length]!);
    },
    close: async () => {
      sessions.close();
      await revokeLeases(etcd.get(0), ids).finally(() => etcd.close());
    },
    extra: () => ({ reconnects: sessions.reconnects }),
  };
}
