/**
 * Client keepalive pings are accepted at any rate, with and without open streams. etcd 3.4's own proxy
 * enforces grpc-go's 5 minute minimum and answers an idle `etcdctl watch` (pings every 10 s after grpc-go's
 * clamp) with GOAWAY too_many_pings after about 30 s; here a client pings far faster than etcdctl does.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import * as http2 from "node:http2";
import t from "tap";
import { RangeRequestSchema, WatchRequestSchema } from "../../gen/etcdserverpb/rpc_pb.js";
import { enc } from "../helpers/clients.js";
import { startEtcd } from "../helpers/etcd.js";
import { sleep } from "../helpers/ports.js";
import { startEdge } from "../helpers/proxy.js";
import { frame, grpcStatus, raw } from "../helpers/raw-rpc.js";

t.test("pings every 100 ms for 3 s, idle and with an open watch, never earn a GOAWAY", async (t) => {
  const etcd = await startEtcd(t);
  const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`]);
  const session = http2.connect(edge.url);
  t.teardown(() => session.destroy());
  let goaway: number | undefined;
  session.on("goaway", (code) => { goaway = code; });
  session.on("error", () => {});
  await new Promise((resolve) => session.once("connect", resolve)); // a ping sent before is cancelled
  const ping = () => new Promise<void>((resolve, reject) => {
    session.ping((err) => (err ? reject(err) : resolve()));
  });

  // No stream open: grpc-go servers refuse this by default (permit-without-stream false).
  for (let i = 0; i < 15; i++) {
    await ping();
    await sleep(100);
  }
  t.equal(goaway, undefined, "no GOAWAY while idle");

  // An open watch, as `etcdctl watch` holds one.
  const watch = session.request({ ":method": "POST", ":path": "/etcdserverpb.Watch/Watch", "content-type": "application/grpc", te: "trailers" });
  watch.on("error", () => {});
  watch.write(frame(toBinary(WatchRequestSchema, create(WatchRequestSchema, { requestUnion: { case: "createRequest", value: { key: enc("ping/k") } } }))));
  await new Promise((resolve) => watch.once("data", resolve));
  for (let i = 0; i < 15; i++) {
    await ping();
    await sleep(100);
  }
  t.equal(goaway, undefined, "no GOAWAY with a watch open");
  t.notOk(watch.closed, "the watch stream is still open");

  const answer = await raw(session, "/etcdserverpb.KV/Range", { "content-type": "application/grpc", te: "trailers" }, frame(toBinary(RangeRequestSchema, create(RangeRequestSchema, { key: enc("ping/k") }))));
  t.equal(grpcStatus(answer).status, "0", "the same connection still serves calls");
  watch.close();
});
