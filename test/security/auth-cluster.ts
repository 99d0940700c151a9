/**
 * An etcd with auth on and two users whose roles differ, the proxy in front, and ways to call both and
 * compare what each answered: the security tests' shared setup.
 *
 * Users: root (role root); alice (role ra: read+write on /a/ only); bob (role rb: read+write on /b/ only).
 * An outcome is a string, "ok <what matters>" or "<code> <etcd's message>", so a proxied call and a
 * direct one compare with one t.equal.
 */
import { create } from "@bufbuild/protobuf";
import { ConnectError, type Client } from "@connectrpc/connect";
import type { Test } from "tap";
import { Auth, KV, Lease, LeaseKeepAliveRequestSchema, Watch, type LeaseKeepAliveRequest, type WatchCreateRequest, type WatchResponse } from "../../gen/etcdserverpb/rpc_pb.js";
import { clientFor, dec, enc, type ProtocolName } from "../helpers/clients.js";
import { startEtcd, type Etcd } from "../helpers/etcd.js";
import { call, openStream } from "../helpers/gateway.js";
import { startEdge, type EdgeProxy } from "../helpers/proxy.js";
import { AsyncQueue, nextWithin } from "../helpers/streams.js";
import { WatchSession } from "../helpers/watch-session.js";

export type User = "alice" | "bob";
export const PASSWORDS = { root: "rootpw", alice: "alicepw", bob: "bobpw" } as const;
/** Each user's prefix, and its range_end. */
export const PREFIX = { alice: "/a/", bob: "/b/" } as const;
export const prefixEnd = (p: string) => p.slice(0, -1) + String.fromCharCode(p.charCodeAt(p.length - 1) + 1);

export interface AuthCluster {
  etcd: Etcd;
  edge: EdgeProxy;
  tokens: Record<User | "root", string>;
}

/**
 * `etcdArgs`: e.g. a short --auth-token-ttl. bcrypt cost 4 (etcd's minimum) keeps Authenticate cheap.
 * SECURITY_EDGE_ARGS (space-separated) adds proxy flags, e.g. "--watch-cache-prefix=/a/ --watch-cache-prefix=/b/".
 */
export async function authCluster(t: Test, etcdArgs: string[] = []): Promise<AuthCluster> {
  const etcd = await startEtcd(t, { extraArgs: ["--bcrypt-cost=4", ...etcdArgs] });
  const extra = (process.env["SECURITY_EDGE_ARGS"] ?? "").split(" ").filter((a) => a !== "");
  const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`, ...extra]);
  const auth = clientFor(Auth, "grpc", etcd.url);
  const kv = clientFor(KV, "grpc", etcd.url);
  await kv.put({ key: enc("/a/x"), value: enc("a0") });
  await kv.put({ key: enc("/b/x"), value: enc("b0") });
  await auth.userAdd({ name: "root", password: PASSWORDS.root });
  await auth.roleAdd({ name: "root" });
  await auth.userGrantRole({ user: "root", role: "root" });
  for (const [user, role, prefix] of [["alice", "ra", PREFIX.alice], ["bob", "rb", PREFIX.bob]] as const) {
    await auth.userAdd({ name: user, password: PASSWORDS[user] });
    await auth.roleAdd({ name: role });
    await auth.roleGrantPermission({ name: role, perm: { permType: 2 /* READWRITE */, key: enc(prefix), rangeEnd: enc(prefixEnd(prefix)) } });
    await auth.userGrantRole({ user, role });
  }
  await auth.authEnable({});
  const tokens = {
    root: await token(etcd.url, "root"),
    alice: await token(etcd.url, "alice"),
    bob: await token(etcd.url, "bob"),
  };
  return { etcd, edge, tokens };
}

export async function token(url: string, user: User | "root"): Promise<string> {
  return (await clientFor(Auth, "grpc", url).authenticate({ name: user, password: PASSWORDS[user] })).token;
}

export const withToken = (token: string | undefined) => (token === undefined ? {} : { headers: { token } });

/** "ok <shown>" or "<gRPC code> <etcd's message>". */
export async function outcome<T>(p: Promise<T>, show: (r: T) => string = () => ""): Promise<string> {
  try {
    return `ok ${show(await p)}`;
  } catch (err) {
    const ce = ConnectError.from(err);
    return `${ce.code} ${ce.rawMessage}`;
  }
}

export const values = (r: { kvs: { key: Uint8Array; value: Uint8Array }[] }) => r.kvs.map((kv) => `${dec(kv.key)}=${dec(kv.value)}`).join(",");

export function rangeOutcome(kv: Client<typeof KV>, key: string, serializable: boolean, token?: string): Promise<string> {
  return outcome(kv.range({ key: enc(key), serializable }, withToken(token)), values);
}

export function putOutcome(kv: Client<typeof KV>, key: string, value: string, token?: string): Promise<string> {
  return outcome(kv.put({ key: enc(key), value: enc(value) }, withToken(token)));
}

/** A Txn as clientv3's STM writes one: compare the key's version, then put, else read. */
export function txnOutcome(kv: Client<typeof KV>, key: string, value: string, token?: string): Promise<string> {
  const k = enc(key);
  return outcome(kv.txn({
    compare: [{ key: k, target: 0 /* VERSION */, result: 1 /* GREATER */, targetUnion: { case: "version", value: 0n } }],
    success: [{ request: { case: "requestPut", value: { key: k, value: enc(value) } } }],
    failure: [{ request: { case: "requestRange", value: { key: k } } }],
  }, withToken(token)), (r) => `succeeded=${r.succeeded}`);
}

/** The JSON gateway: "<status> <what matters>" with the Authorization header etcd's gateway reads. */
export async function gatewayOutcome(base: string, path: string, body: unknown, token?: string, show: (r: Record<string, unknown>) => string = () => ""): Promise<string> {
  const headers: Record<string, string> = { "content-type": "application/json", ...(token === undefined ? {} : { authorization: token }) };
  const a = await call(base, path, JSON.stringify(body), { headers });
  const parsed = JSON.parse(a.body) as Record<string, unknown>;
  return a.status === 200 ? `200 ${show(parsed)}` : `${a.status} ${JSON.stringify(parsed)}`;
}

export const b64 = (s: string) => Buffer.from(s).toString("base64");
export const gatewayValues = (r: Record<string, unknown>) =>
  ((r["kvs"] ?? []) as { key: string; value: string }[]).map((kv) => `${Buffer.from(kv.key, "base64")}=${Buffer.from(kv.value, "base64")}`).join(",");

/** What etcd's answer to a watch create says about access: created, canceled, cancel_reason. */
export const createdSummary = (r: WatchResponse) => `created=${r.created} canceled=${r.canceled} reason=${r.cancelReason}`;

/** A client watch stream with one create, waiting for the answer to it; the session stays open. */
export async function watchCreate(client: Client<typeof Watch>, req: Partial<WatchCreateRequest>, token?: string): Promise<{ session: WatchSession; first: string }> {
  const session = new WatchSession(client, token === undefined ? {} : { headers: { token } });
  try {
    return { session, first: createdSummary(await session.createAndWait(req as never, "the create's answer")) };
  } catch (err) {
    // A stream that ends instead of answering (an error status): its outcome is the error.
    const ce = ConnectError.from(session.error ?? err);
    return { session, first: `${ce.code} ${ce.rawMessage}` };
  }
}

/** Watch create over the JSON gateway: the first line's access fields (or the HTTP error). */
export async function gatewayWatchCreate(base: string, key: string, rangeEnd: string, token?: string): Promise<{ first: string; abort(): void; lines: Awaited<ReturnType<typeof openStream>>["lines"] }> {
  const body = JSON.stringify({ create_request: { key: b64(key), range_end: b64(rangeEnd) } });
  const s = await openStream(base, "/v3/watch", body, { "content-type": "application/json", ...(token === undefined ? {} : { authorization: token }) });
  const line = JSON.parse(await s.lines.next("the watch create's answer")) as { result?: { created?: boolean; canceled?: boolean; cancel_reason?: string }; error?: unknown };
  const r = line.result;
  const first = r ? `created=${r.created ?? false} canceled=${r.canceled ?? false} reason=${r.cancel_reason ?? ""}` : `${s.status} ${JSON.stringify(line)}`;
  return { first, abort: s.abort, lines: s.lines };
}

/** One LeaseKeepAlive on its own stream: "ok ttl>0" / "ok ttl=0" (unknown lease) or the error. */
export async function keepAliveOutcome(client: Client<typeof Lease>, id: bigint, token?: string): Promise<string> {
  const q = new AsyncQueue<LeaseKeepAliveRequest>();
  q.push(create(LeaseKeepAliveRequestSchema, { ID: id }));
  const ac = new AbortController();
  try {
    const it = client.leaseKeepAlive(q, { ...withToken(token), signal: ac.signal })[Symbol.asyncIterator]();
    const r = await nextWithin(it, "a keep-alive reply");
    return `ok id=${r.ID === id} ${r.TTL > 0n ? "ttl>0" : `ttl=${r.TTL}`}`;
  } catch (err) {
    const ce = ConnectError.from(err);
    return `${ce.code} ${ce.rawMessage}`;
  } finally {
    q.end();
    ac.abort();
  }
}

export const clients = (protocol: ProtocolName, url: string) => ({
  kv: clientFor(KV, protocol, url),
  watch: clientFor(Watch, protocol, url),
  lease: clientFor(Lease, protocol, url),
});
