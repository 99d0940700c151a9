/**
 * Under --fairness single-flight shares a call only within one flow: a shared call waits in its first
 * caller's queues and is refused with them, so a quiet flow's read must not ride a heavy flow's call.
 * Without charges (fairness off) identical reads share one call, as before.
 */
import { create } from "@bufbuild/protobuf";
import t from "tap";
import { RangeRequestSchema, RangeResponseSchema } from "../../gen/etcdserverpb/rpc_pb.js";
import type { Upstream } from "../../src/upstream/client/upstream.js";
import { CoalescedKv } from "../../src/upstream/kv/coalesced-kv.js";
import type { CallerContext } from "../../src/wire/caller.js";
import { setCharge } from "../../src/wire/flow.js";

function fakeUpstream() {
  const calls: string[] = [];
  const up = {
    unary: async (caller: CallerContext) => {
      calls.push(caller.requestHeader.get("x-who") ?? "");
      await new Promise((r) => setTimeout(r, 20));
      return create(RangeResponseSchema, { header: { revision: 1n } });
    },
  } as unknown as Upstream;
  return { up, calls };
}

const caller = (who: string, flow?: string): CallerContext => {
  const requestHeader = new Headers({ "x-who": who });
  if (flow) setCharge(requestHeader, { flow, seats: 1 });
  return { requestHeader, signal: new AbortController().signal, timeoutMs: () => undefined };
};
const req = create(RangeRequestSchema, { key: new TextEncoder().encode("k"), serializable: true });

t.test("fairness off: identical reads share one call", async (t) => {
  const { up, calls } = fakeUpstream();
  const kv = new CoalescedKv(up, { invalidator: false });
  await Promise.all([kv.range(caller("a"), req), kv.range(caller("b"), req), kv.range(caller("c"), req)]);
  t.equal(calls.length, 1);
});

t.test("fairness on: one call per flow, shared within a flow", async (t) => {
  const { up, calls } = fakeUpstream();
  const kv = new CoalescedKv(up, { invalidator: false });
  await Promise.all([kv.range(caller("a1", "addr:a"), req), kv.range(caller("a2", "addr:a"), req), kv.range(caller("b1", "addr:b"), req)]);
  t.equal(calls.length, 2, "two calls for two flows");
  t.same(calls.map((w) => w[0]).sort(), ["a", "b"], "each flow's call carries one of its own callers");
});
