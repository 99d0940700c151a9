/**
 * A deadline toward etcd is decided after the I/O that arrived meanwhile has been read. With the proxy's
 * event loop busy past a call's deadline, etcd's answer is already in the socket when the timer fires;
 * before, the timer won and a liveness check (Status, 1 s) marked a live etcd down, ending every stream on
 * it. Here a Status with a 300 ms deadline is sent, and the loop is then kept busy for 1 s: it succeeds.
 */
import t from "tap";
import { Maintenance, type StatusRequest, type StatusResponse } from "../../gen/etcdserverpb/rpc_pb.js";
import { UnaryCaller } from "../../src/upstream/client/unary-caller.js";
import { startEtcd } from "../helpers/etcd.js";

const etcd = await startEtcd(t);

t.test("an answer that came while the loop was busy beats the deadline that passed meanwhile", async (t) => {
  const caller = new UnaryCaller({ url: etcd.url, tls: undefined, maxSendBytes: 1 << 20, maxRecvBytes: 1 << 20, keepAliveTimeMs: 0, keepAliveTimeoutMs: 0, keepAnswerBytes: true });
  t.teardown(() => caller.close());
  await caller.call<StatusRequest, StatusResponse>(Maintenance.method.status, {}); // the session is up
  const answer = caller.call<StatusRequest, StatusResponse>(Maintenance.method.status, {}, { timeoutMs: 300 });
  await new Promise((r) => setImmediate(r)); // the request is written
  const until = Date.now() + 1_000;
  while (Date.now() < until) { /* busy: etcd answers meanwhile */ }
  const res = await answer.then((r) => r, (err: unknown) => err);
  t.notOk(res instanceof Error, `answered (${res instanceof Error ? res.message : "ok"})`);
});

t.test("with no answer, the deadline still ends the call", async (t) => {
  etcd.process.kill("SIGSTOP");
  t.teardown(() => { etcd.process.kill("SIGCONT"); });
  const caller = new UnaryCaller({ url: etcd.url, tls: undefined, maxSendBytes: 1 << 20, maxRecvBytes: 1 << 20, keepAliveTimeMs: 0, keepAliveTimeoutMs: 0, keepAnswerBytes: true });
  t.teardown(() => caller.close());
  const started = Date.now();
  const err = await caller.call(Maintenance.method.status, {}, { timeoutMs: 300 }).then(() => undefined, (e: unknown) => e as Error);
  t.match(err?.message ?? "", /deadline/i, "DeadlineExceeded");
  t.ok(Date.now() - started < 2_000, `after ${Date.now() - started} ms`);
});
