/**
 * grpc.health.v1.Health on the proxy's port, as load balancers and Kubernetes gRPC probes call it: it
 * follows the same check as GET /health.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import t from "tap";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.js";
import { clientFor } from "../helpers/clients.js";
import { startEtcd } from "../helpers/etcd.js";
import { startEdge } from "../helpers/proxy.js";

t.test("Check and Watch follow etcd's health", async (t) => {
  const etcd = await startEtcd(t);
  const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`]);
  for (const protocol of ["grpc", "connect-json"] as const) {
    const health = clientFor(Health, protocol, edge.url);
    t.equal((await health.check({})).status, Status.SERVING, `${protocol}: the server as a whole is SERVING`);
    t.equal((await health.check({ service: "etcdserverpb.KV" })).status, Status.SERVING, `${protocol}: etcdserverpb.KV is SERVING`);
    const err = await health.check({ service: "no.such.Service" }).then(() => undefined, (e: unknown) => ConnectError.from(e));
    t.equal(err?.code, Code.NotFound, `${protocol}: an unknown service is NotFound, as the health protocol says`);
  }

  const health = clientFor(Health, "grpc", edge.url);
  const abort = new AbortController();
  t.teardown(() => abort.abort());
  const updates = health.watch({}, { signal: abort.signal })[Symbol.asyncIterator]();
  t.equal((await updates.next()).value?.status, Status.SERVING, "Watch starts with the current status");
  await etcd.stop();
  t.equal((await updates.next()).value?.status, Status.NOT_SERVING, "and sends NOT_SERVING once etcd is gone");
  t.equal((await health.check({})).status, Status.NOT_SERVING, "Check agrees");
});
