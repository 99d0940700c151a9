/**
 * Differential conformance with @grpc/grpc-js, the gRPC library under nearly every Node etcd client (the
 * `etcd3` package among them): each case makes the same call against etcd directly and through etcd-edge
 * and compares what a grpc-js client sees. On success: the decoded responses, with what legitimately
 * differs normalised (a response header's cluster_id/member_id/revision/raft_term, revisions and lease IDs:
 * zero stays 0, anything else becomes "≠0"; each side's names carry its own tag, replaced by "<side>"), or
 * for answers that depend on the whole cluster's state, only the fields that must be equal. On error: the
 * status code, the details (grpc-message as grpc-js decodes it, with decodeURI) byte for byte, and the
 * metadata keys beside the status.
 *
 * Both sides talk to the same etcd, so each side uses its own keys, users, roles and leases (tag `gjsd`
 * for etcd direct, `gjsp` through the proxy: the same length, so sizes match), and cases that change the
 * whole store (compaction) come last.
 */
import { create, toBinary, type DescMethodUnary, type MessageInitShape } from "@bufbuild/protobuf";
import { execFileSync } from "node:child_process";
import t from "tap";
import { Permission_Type } from "../../gen/authpb/auth_pb.js";
import {
  AlarmRequest_AlarmAction,
  Auth,
  Cluster,
  Compare_CompareResult,
  Compare_CompareTarget,
  KV,
  Lease,
  Maintenance,
  RangeRequestSchema,
} from "../../gen/etcdserverpb/rpc_pb.js";
import { startEtcd } from "../helpers/etcd.js";
import { firstOfBidi, firstOfServerStream, grpc, grpcJsClient, rawUnary, unary, type CallOptions, type Outcome } from "../helpers/grpc-js.js";
import { startEdge } from "../helpers/proxy.js";

const etcd = await startEtcd(t);
// If the proxy cannot start, the top-level await throws before tap's teardowns run: stop etcd here.
const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`]).catch(async (err: unknown) => {
  await etcd.stop();
  throw err;
});

/** The etcd under test: 3.4 (Debian 12's, the default) or 3.5 (test/etcd35/ puts it first on PATH). */
const ETCD_3_5 = / 3\.5\./.test(execFileSync("etcd", ["--version"], { encoding: "utf8" }).split("\n")[0] ?? "");

interface Side {
  name: "etcd" | "etcd-edge";
  client: grpc.Client;
  /** Put in every key, user and role name this side makes. */
  tag: string;
  /** A lease ID no one granted, distinct per side. */
  unknownLease: bigint;
  /** A lease ID this side grants explicitly. */
  ownLease: bigint;
}

const sides: [Side, Side] = [
  { name: "etcd", client: grpcJsClient(t, etcd.endpoint), tag: "gjsd", unknownLease: 0x0d1e_c7_00_00_01n, ownLease: 0x0d1e_c7_00_10_01n },
  { name: "etcd-edge", client: grpcJsClient(t, edge.addr), tag: "gjsp", unknownLease: 0x0d1e_c7_00_00_02n, ownLease: 0x0d1e_c7_00_10_02n },
];

const enc = (s: string) => new TextEncoder().encode(s);
const key = (s: Side, name: string) => enc(`${s.tag}/${name}`);
/** The range end that makes `key` a prefix. */
const prefixEnd = (k: Uint8Array) => {
  const end = Uint8Array.from(k);
  end[end.length - 1]!++;
  return end;
};

const call = <M extends DescMethodUnary>(s: Side, method: M, req: MessageInitShape<M["input"]>, o?: CallOptions) => unary(s.client, method, req, o);

/** A call that must succeed (setup for a case): its response, or the test stops with what went wrong. */
async function must<M extends DescMethodUnary>(s: Side, method: M, req: MessageInitShape<M["input"]>) {
  const out = await call(s, method, req);
  if (!out.ok) throw new Error(`setup ${method.name} on ${s.name} failed: ${out.err.code} ${out.err.details}`);
  return out.res;
}

/** Response-header fields that are the member's and the moment's, not the answer's. */
const HEADER_VARYING = new Set(["clusterId", "memberId", "revision", "raftTerm"]);
/** Fields that differ between the two sides' own objects (revisions of their keys, IDs of their leases). */
const VARYING = new Set(["createRevision", "modRevision", "lease", "ID"]);
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** A response as plain data, with what legitimately differs between the sides normalised. */
function normalise(v: unknown, s: Side, field = "", inHeader = false): unknown {
  if (typeof v === "bigint") {
    if ((inHeader && HEADER_VARYING.has(field)) || VARYING.has(field)) return v === 0n ? "0" : "≠0";
    return v.toString();
  }
  if (typeof v === "string") return v.replaceAll(s.tag, "<side>");
  if (v instanceof Uint8Array) {
    try {
      return `bytes:${utf8.decode(v).replaceAll(s.tag, "<side>")}`;
    } catch {
      return `hex:${Buffer.from(v).toString("hex")}`;
    }
  }
  if (Array.isArray(v)) return v.map((x) => normalise(x, s, field, inHeader));
  if (v && typeof v === "object") {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalise(x, s, k, field === "header")]));
  }
  return v;
}

/** Metadata beside an error status that is HTTP plumbing, not etcd's: compared nowhere. */
const TRANSPORT_METADATA = new Set(["content-type", "date", "server", "vary", "content-length", "grpc-accept-encoding", "grpc-encoding"]);
const metadataKeys = (md: Record<string, string[]>) => Object.keys(md).filter((k) => !TRANSPORT_METADATA.has(k) && !k.startsWith("access-control-")).sort();

const describe = (o: Outcome<unknown>) => (o.ok ? "OK" : `${grpc.status[o.err.code]}(${o.err.code}) ${JSON.stringify(o.err.details)} metadata ${JSON.stringify(o.err.metadata)}`);

interface CaseOptions<T> {
  /** What etcd itself must answer, so the case tests what it says it tests: "ok", or the code. */
  etcd: "ok" | grpc.status;
  /** On success, what must be equal (default: the whole normalised response). */
  view?: (res: T, s: Side) => unknown;
  /** On error, compare only the code (the details are reported, not compared). Only with a reason. */
  codeOnly?: string;
  /**
   * A deliberate difference, stated: etcd-edge answers with this code where etcd answers as `etcd` says.
   * Only with a reason; the case then checks each side against its own expectation.
   */
  expectedDifference?: { reason: string; edge: grpc.status };
}

/**
 * One differential case: `run` on etcd directly, then through etcd-edge; the outcomes compared as a
 * grpc-js client sees them.
 */
function differential<T>(name: string, run: (s: Side) => Promise<Outcome<T>>, o: CaseOptions<T>) {
  return t.test(name, async (t) => {
    const direct = await run(sides[0]);
    const proxied = await run(sides[1]);
    t.comment(`etcd:      ${describe(direct)}`);
    t.comment(`etcd-edge: ${describe(proxied)}`);
    if (o.etcd === "ok") t.ok(direct.ok, `etcd answers OK (${describe(direct)})`);
    else t.equal(direct.ok ? "OK" : direct.err.code, o.etcd, `etcd answers ${grpc.status[o.etcd]} (${describe(direct)})`);

    if (o.expectedDifference) {
      t.comment(`expected difference: ${o.expectedDifference.reason}`);
      t.equal(proxied.ok ? "OK" : grpc.status[proxied.err.code], grpc.status[o.expectedDifference.edge], `etcd-edge answers ${grpc.status[o.expectedDifference.edge]} (${describe(proxied)})`);
    } else if (direct.ok && proxied.ok) {
      const view = o.view ?? ((res: T, s: Side) => normalise(res, s));
      t.strictSame(view(proxied.res, sides[1]), view(direct.res, sides[0]), "the same response");
    } else if (!direct.ok && !proxied.ok) {
      t.equal(grpc.status[proxied.err.code], grpc.status[direct.err.code], "the same status code");
      if (o.codeOnly) t.comment(`details not compared: ${o.codeOnly}`);
      else t.equal(proxied.err.details, direct.err.details, "the same status details (grpc-message as grpc-js decodes it)");
      t.strictSame(metadataKeys(proxied.err.metadata), metadataKeys(direct.err.metadata), "the same metadata keys beside the status");
    } else {
      t.fail(`etcd: ${describe(direct)}; etcd-edge: ${describe(proxied)}`);
    }
  });
}

const sameHeaderOnly = (res: { header?: unknown }, s: Side) => normalise(res.header, s, "header");

// ---------------------------------------------------------------------------------------------- KV
differential("KV.Put: a new key, prev_kv asked", (s) => call(s, KV.method.put, { key: key(s, "a"), value: enc("1"), prevKv: true }), { etcd: "ok" });
differential("KV.Put: over an existing key, prev_kv returned", (s) => call(s, KV.method.put, { key: key(s, "a"), value: enc("2"), prevKv: true }), { etcd: "ok" });
differential("KV.Range: one key", (s) => call(s, KV.method.range, { key: key(s, "a") }), { etcd: "ok" });
differential("KV.Range: a prefix with a limit (more, count)", async (s) => {
  for (const k of ["p/1", "p/2", "p/3"]) await must(s, KV.method.put, { key: key(s, k), value: enc(k) });
  return call(s, KV.method.range, { key: key(s, "p/"), rangeEnd: prefixEnd(key(s, "p/")), limit: 2n });
}, { etcd: "ok" });
differential("KV.Range: count_only, serializable", (s) => call(s, KV.method.range, { key: key(s, "p/"), rangeEnd: prefixEnd(key(s, "p/")), countOnly: true, serializable: true }), { etcd: "ok" });
differential("KV.Range: keys_only", (s) => call(s, KV.method.range, { key: key(s, "p/"), rangeEnd: prefixEnd(key(s, "p/")), keysOnly: true }), { etcd: "ok" });
differential("KV.DeleteRange: a prefix, prev_kv asked", (s) => call(s, KV.method.deleteRange, { key: key(s, "p/"), rangeEnd: prefixEnd(key(s, "p/")), prevKv: true }), { etcd: "ok" });
differential("KV.DeleteRange: nothing there", (s) => call(s, KV.method.deleteRange, { key: key(s, "none") }), { etcd: "ok" });
differential("KV.Txn: compare succeeds, put and range", (s) => call(s, KV.method.txn, {
  compare: [{ key: key(s, "a"), target: Compare_CompareTarget.VALUE, result: Compare_CompareResult.EQUAL, targetUnion: { case: "value", value: enc("2") } }],
  success: [
    { request: { case: "requestPut", value: { key: key(s, "t"), value: enc("x"), prevKv: true } } },
    { request: { case: "requestRange", value: { key: key(s, "a") } } },
  ],
  failure: [{ request: { case: "requestDeleteRange", value: { key: key(s, "a") } } }],
}), { etcd: "ok" });
differential("KV.Txn: compare fails, failure branch with a nested txn", (s) => call(s, KV.method.txn, {
  compare: [{ key: key(s, "a"), target: Compare_CompareTarget.VERSION, result: Compare_CompareResult.GREATER, targetUnion: { case: "version", value: 100n } }],
  success: [{ request: { case: "requestPut", value: { key: key(s, "never"), value: enc("x") } } }],
  failure: [{ request: { case: "requestTxn", value: { success: [{ request: { case: "requestRange", value: { key: key(s, "t") } } }] } } }],
}), { etcd: "ok" });

differential("KV.Put: key not provided (empty key)", (s) => call(s, KV.method.put, { key: new Uint8Array(), value: enc("v") }), { etcd: grpc.status.INVALID_ARGUMENT });
differential("KV.Range: key not provided (empty key)", (s) => call(s, KV.method.range, { key: new Uint8Array() }), { etcd: grpc.status.INVALID_ARGUMENT });
differential("KV.Put: ignore_value on a missing key (key not found)", (s) => call(s, KV.method.put, { key: key(s, "missing"), ignoreValue: true }), { etcd: grpc.status.INVALID_ARGUMENT });
differential("KV.Put: with a lease no one granted (lease not found)", (s) => call(s, KV.method.put, { key: key(s, "l"), value: enc("v"), lease: s.unknownLease }), { etcd: grpc.status.NOT_FOUND });
differential("KV.Txn: too many operations (129 > etcd's default 128)", (s) => {
  const ops: MessageInitShape<typeof KV.method.txn.input>["success"] = Array.from({ length: 129 }, (_, i) => ({ request: { case: "requestPut" as const, value: { key: key(s, `many/${i}`), value: enc("v") } } }));
  return call(s, KV.method.txn, { success: ops });
}, { etcd: grpc.status.INVALID_ARGUMENT });
differential("KV.Txn: duplicate key in puts", (s) => call(s, KV.method.txn, {
  success: [
    { request: { case: "requestPut", value: { key: key(s, "dup"), value: enc("1") } } },
    { request: { case: "requestPut", value: { key: key(s, "dup"), value: enc("2") } } },
  ],
}), { etcd: grpc.status.INVALID_ARGUMENT });
differential("KV.Range: a future revision", async (s) => {
  const now = await must(s, KV.method.range, { key: key(s, "a") });
  return call(s, KV.method.range, { key: key(s, "a"), revision: now.header!.revision + 1000n });
}, { etcd: grpc.status.OUT_OF_RANGE });
differential("KV.Compact: a future revision", async (s) => {
  const now = await must(s, KV.method.range, { key: key(s, "a") });
  return call(s, KV.method.compact, { revision: now.header!.revision + 1000n });
}, { etcd: grpc.status.OUT_OF_RANGE });

// Request size. etcd refuses a request over --max-request-bytes (1.5 MiB by default) itself, with
// InvalidArgument "etcdserver: request is too large", and grpc-go refuses a message over etcd's gRPC receive
// limit (1.5 MiB + 512 KiB = 2 MiB) with ResourceExhausted in its own words. etcd-edge refuses any request
// message over its --max-send-bytes (1.5 MiB by default, as etcd's grpc-proxy) before sending it on, with
// ResourceExhausted in its own words.
const MAX_REQUEST_BYTES = 1.5 * 1024 * 1024;
differential("KV.Put: just under 1.5 MiB (both accept it)", (s) => call(s, KV.method.put, { key: key(s, "big"), value: new Uint8Array(MAX_REQUEST_BYTES - 100) }, { timeoutMs: 20_000 }), {
  etcd: "ok",
});
differential("KV.Put: request too large (a 1.6 MB value: over --max-request-bytes, under etcd's gRPC limit)", (s) => call(s, KV.method.put, { key: key(s, "big"), value: new Uint8Array(1_600_000) }, { timeoutMs: 20_000 }), {
  etcd: grpc.status.INVALID_ARGUMENT,
  // EXPECTED DIFFERENCE: etcd answers InvalidArgument "etcdserver: request is too large"; etcd-edge never sends
  // the request on: over its --max-send-bytes it answers ResourceExhausted "message size N is larger than
  // configured readMaxBytes 1572864" (etcd's own grpc-proxy has the same --max-send-bytes flag and 1.5 MiB
  // default on what it sends to etcd). Remove this expectation if the proxy's default moves to etcd's gRPC
  // limit (2 MiB) so that etcd answers for itself.
  expectedDifference: { reason: "over etcd-edge's --max-send-bytes (1.5 MiB) the proxy refuses the request itself: ResourceExhausted, not etcd's InvalidArgument", edge: grpc.status.RESOURCE_EXHAUSTED },
});
differential("KV.Put: message too large (a 2.2 MB value: over etcd's gRPC receive limit)", (s) => call(s, KV.method.put, { key: key(s, "big"), value: new Uint8Array(2_200_000) }, { timeoutMs: 20_000 }), {
  etcd: grpc.status.RESOURCE_EXHAUSTED,
  // EXPECTED DIFFERENCE (details only): grpc-go says "grpc: received message larger than max (2200015 vs.
  // 2097152)", etcd-edge "message size N is larger than configured readMaxBytes 1572864". The code is the same.
  codeOnly: "each side words its own message-size limit (grpc-go's and etcd-edge's --max-send-bytes)",
});

// etcd 3.4 refuses a token it cannot check even with auth off; 3.5 ignores it.
const bogusToken = ETCD_3_5 ? "ok" : grpc.status.UNAUTHENTICATED;
differential("KV.Range with an invalid auth token (token: bogus, auth disabled)", (s) => call(s, KV.method.range, { key: key(s, "a") }, { metadata: { token: "bogus" } }), { etcd: bogusToken });
differential("KV.Put with an invalid auth token (token: bogus, auth disabled)", (s) => call(s, KV.method.put, { key: key(s, "tok"), value: enc("v") }, { metadata: { token: "bogus" } }), { etcd: bogusToken });

differential("an unknown method: /etcdserverpb.KV/Nope", (s) => rawUnary(s.client, "/etcdserverpb.KV/Nope", toBinary(RangeRequestSchema, create(RangeRequestSchema, { key: key(s, "a") }))), {
  etcd: grpc.status.UNIMPLEMENTED,
  codeOnly: "grpc-go and etcd-edge word an unknown method differently; reported in the output",
});

// ------------------------------------------------------------------------------------------- Lease
differential("Lease.LeaseGrant: TTL 60, ID chosen by etcd", (s) => call(s, Lease.method.leaseGrant, { TTL: 60n }), { etcd: "ok" });
differential("Lease.LeaseGrant: TTL 60, ID chosen by the client", (s) => call(s, Lease.method.leaseGrant, { TTL: 60n, ID: s.ownLease }), { etcd: "ok" });
differential("Lease.LeaseGrant: an ID that exists (lease already exists)", (s) => call(s, Lease.method.leaseGrant, { TTL: 60n, ID: s.ownLease }), { etcd: grpc.status.FAILED_PRECONDITION });
differential("Lease.LeaseTimeToLive: a granted lease with a key", async (s) => {
  await must(s, KV.method.put, { key: key(s, "leased"), value: enc("v"), lease: s.ownLease });
  return call(s, Lease.method.leaseTimeToLive, { ID: s.ownLease, keys: true });
}, {
  etcd: "ok",
  // TTL counts down: within a few seconds of the grant either side may have ticked.
  view: (res, s) => ({ ...(normalise(res, s) as object), TTL: res.TTL > 50n && res.TTL <= 60n ? "50<TTL≤60" : res.TTL.toString() }),
});
differential("Lease.LeaseTimeToLive: an ID no one granted", (s) => call(s, Lease.method.leaseTimeToLive, { ID: s.unknownLease, keys: true }), { etcd: "ok" });
differential("Lease.LeaseLeases: lists this side's lease", (s) => call(s, Lease.method.leaseLeases, {}), {
  etcd: "ok",
  // The list is the whole cluster's (both sides' leases): compare the header and that this side's is in it.
  view: (res, s) => ({ header: sameHeaderOnly(res, s), hasOwn: res.leases.some((l) => l.ID === s.ownLease) }),
});
differential("Lease.LeaseKeepAlive: one keep-alive, its reply", (s) => firstOfBidi(s.client, Lease.method.leaseKeepAlive, { ID: s.ownLease }), {
  etcd: "ok",
  view: (res, s) => ({ ...(normalise(res, s) as object), ownId: res.ID === s.ownLease }),
});
differential("Lease.LeaseKeepAlive: an ID no one granted (TTL 0)", (s) => firstOfBidi(s.client, Lease.method.leaseKeepAlive, { ID: s.unknownLease }), { etcd: "ok" });
differential("Lease.LeaseRevoke: a granted lease", (s) => call(s, Lease.method.leaseRevoke, { ID: s.ownLease }), { etcd: "ok" });
differential("Lease.LeaseRevoke: an ID no one granted (lease not found)", (s) => call(s, Lease.method.leaseRevoke, { ID: s.unknownLease }), { etcd: grpc.status.NOT_FOUND });
differential("Lease.LeaseRevoke: the revoked lease again (lease not found)", (s) => call(s, Lease.method.leaseRevoke, { ID: s.ownLease }), { etcd: grpc.status.NOT_FOUND });

// -------------------------------------------------------------------------------------------- Auth
const user = (s: Side, n = "u") => `${s.tag}-${n}`;
const role = (s: Side, n = "r") => `${s.tag}-${n}`;
const ownNames = (names: string[], s: Side) => names.filter((n) => n.startsWith(`${s.tag}-`)).map((n) => n.replaceAll(s.tag, "<side>")).sort();

differential("Auth.RoleAdd", (s) => call(s, Auth.method.roleAdd, { name: role(s) }), { etcd: "ok" });
differential("Auth.RoleAdd: again (role already exists)", (s) => call(s, Auth.method.roleAdd, { name: role(s) }), { etcd: grpc.status.FAILED_PRECONDITION });
differential("Auth.RoleAdd: empty name", (s) => call(s, Auth.method.roleAdd, { name: "" }), { etcd: grpc.status.INVALID_ARGUMENT });
differential("Auth.RoleGrantPermission", (s) => call(s, Auth.method.roleGrantPermission, { name: role(s), perm: { permType: Permission_Type.READWRITE, key: key(s, ""), rangeEnd: prefixEnd(key(s, "")) } }), { etcd: "ok" });
differential("Auth.RoleGrantPermission: an unknown role (role not found)", (s) => call(s, Auth.method.roleGrantPermission, { name: role(s, "nobody"), perm: { permType: Permission_Type.READ, key: key(s, "x") } }), { etcd: grpc.status.FAILED_PRECONDITION });
differential("Auth.RoleGet", (s) => call(s, Auth.method.roleGet, { role: role(s) }), { etcd: "ok" });
differential("Auth.RoleGet: an unknown role (role not found)", (s) => call(s, Auth.method.roleGet, { role: role(s, "nobody") }), { etcd: grpc.status.FAILED_PRECONDITION });
differential("Auth.RoleList", (s) => call(s, Auth.method.roleList, {}), { etcd: "ok", view: (res, s) => ({ header: sameHeaderOnly(res, s), own: ownNames(res.roles, s) }) });
differential("Auth.RoleRevokePermission", (s) => call(s, Auth.method.roleRevokePermission, { role: role(s), key: key(s, ""), rangeEnd: prefixEnd(key(s, "")) }), { etcd: "ok" });
differential("Auth.RoleRevokePermission: again (permission not granted)", (s) => call(s, Auth.method.roleRevokePermission, { role: role(s), key: key(s, ""), rangeEnd: prefixEnd(key(s, "")) }), { etcd: grpc.status.FAILED_PRECONDITION });

differential("Auth.UserAdd", (s) => call(s, Auth.method.userAdd, { name: user(s), password: "pw-1" }), { etcd: "ok" });
differential("Auth.UserAdd: again (user already exists)", (s) => call(s, Auth.method.userAdd, { name: user(s), password: "pw-1" }), { etcd: grpc.status.FAILED_PRECONDITION });
differential("Auth.UserAdd: empty name", (s) => call(s, Auth.method.userAdd, { name: "", password: "pw" }), { etcd: grpc.status.INVALID_ARGUMENT });
differential("Auth.UserGrantRole", (s) => call(s, Auth.method.userGrantRole, { user: user(s), role: role(s) }), { etcd: "ok" });
differential("Auth.UserGrantRole: an unknown role (role not found)", (s) => call(s, Auth.method.userGrantRole, { user: user(s), role: role(s, "nobody") }), { etcd: grpc.status.FAILED_PRECONDITION });
differential("Auth.UserGrantRole: an unknown user (user not found)", (s) => call(s, Auth.method.userGrantRole, { user: user(s, "nobody"), role: role(s) }), { etcd: grpc.status.FAILED_PRECONDITION });
differential("Auth.UserGet", (s) => call(s, Auth.method.userGet, { name: user(s) }), { etcd: "ok" });
differential("Auth.UserGet: an unknown user (user not found)", (s) => call(s, Auth.method.userGet, { name: user(s, "nobody") }), { etcd: grpc.status.FAILED_PRECONDITION });
differential("Auth.UserList", (s) => call(s, Auth.method.userList, {}), { etcd: "ok", view: (res, s) => ({ header: sameHeaderOnly(res, s), own: ownNames(res.users, s) }) });
differential("Auth.UserChangePassword", (s) => call(s, Auth.method.userChangePassword, { name: user(s), password: "pw-2" }), { etcd: "ok" });
differential("Auth.UserChangePassword: an unknown user (user not found)", (s) => call(s, Auth.method.userChangePassword, { name: user(s, "nobody"), password: "pw" }), { etcd: grpc.status.FAILED_PRECONDITION });
differential("Auth.UserRevokeRole", (s) => call(s, Auth.method.userRevokeRole, { name: user(s), role: role(s) }), { etcd: "ok" });
differential("Auth.UserRevokeRole: again (role not granted)", (s) => call(s, Auth.method.userRevokeRole, { name: user(s), role: role(s) }), { etcd: grpc.status.FAILED_PRECONDITION });
differential("Auth.UserDelete", (s) => call(s, Auth.method.userDelete, { name: user(s) }), { etcd: "ok" });
differential("Auth.UserDelete: again (user not found)", (s) => call(s, Auth.method.userDelete, { name: user(s) }), { etcd: grpc.status.FAILED_PRECONDITION });
differential("Auth.RoleDelete", (s) => call(s, Auth.method.roleDelete, { role: role(s) }), { etcd: "ok" });
differential("Auth.RoleDelete: again (role not found)", (s) => call(s, Auth.method.roleDelete, { role: role(s) }), { etcd: grpc.status.FAILED_PRECONDITION });
// etcd 3.4 has no AuthStatus (added in 3.5): etcd answers Unimplemented, and so must the proxy, in etcd's words.
differential("Auth.AuthStatus (3.4: Unimplemented; 3.5: the status)", (s) => call(s, Auth.method.authStatus, {}), { etcd: ETCD_3_5 ? "ok" : grpc.status.UNIMPLEMENTED });
differential("Auth.Authenticate: a wrong password while auth is disabled", (s) => call(s, Auth.method.authenticate, { name: user(s, "nobody"), password: "wrong" }), { etcd: grpc.status.FAILED_PRECONDITION });

// ------------------------------------------------------------------------------------- Maintenance
differential("Maintenance.Status", (s) => call(s, Maintenance.method.status, {}), {
  etcd: "ok",
  // db size and raft indexes move with every write; the rest is the member's.
  view: (res, s) => ({
    header: sameHeaderOnly(res, s),
    version: res.version,
    leaderIsThisMember: res.leader !== 0n && res.leader === res.header?.memberId,
    dbSize: res.dbSize > 0n,
    raftIndex: res.raftIndex > 0n,
    isLearner: res.isLearner,
    errors: res.errors,
  }),
});
differential("Maintenance.Alarm: list", (s) => call(s, Maintenance.method.alarm, { action: AlarmRequest_AlarmAction.GET }), { etcd: "ok" });
differential("Maintenance.Hash", (s) => call(s, Maintenance.method.hash, {}), { etcd: "ok", view: (res, s) => ({ header: sameHeaderOnly(res, s), hash: res.hash !== 0 }) });
let hashRevision = 0n;
differential("Maintenance.HashKV at a fixed revision", async (s) => {
  // The same revision on both sides, so the hash (of all keys up to it) must be equal.
  if (hashRevision === 0n) hashRevision = (await must(s, KV.method.range, { key: key(s, "a") })).header!.revision;
  return call(s, Maintenance.method.hashKV, { revision: hashRevision });
}, { etcd: "ok" });
differential("Maintenance.HashKV at a future revision", async (s) => {
  const now = await must(s, KV.method.range, { key: key(s, "a") });
  return call(s, Maintenance.method.hashKV, { revision: now.header!.revision + 1000n });
}, { etcd: grpc.status.OUT_OF_RANGE });
differential("Maintenance.Defragment", (s) => call(s, Maintenance.method.defragment, {}, { timeoutMs: 20_000 }), { etcd: "ok" });
differential("Maintenance.Snapshot: the stream starts", (s) => firstOfServerStream(s.client, Maintenance.method.snapshot, {}), {
  etcd: "ok",
  // The first chunk of the database: its bytes and the remaining count move with the store.
  view: (res, s) => ({ header: sameHeaderOnly(res, s), blob: res.blob.length > 0, remaining: res.remainingBytes > 0n }),
});

// ----------------------------------------------------------------------------------------- Cluster
differential("Cluster.MemberList", (s) => call(s, Cluster.method.memberList, {}), {
  etcd: "ok",
  // etcd-edge answers MemberList with itself (its --advertise-client-url, as etcd's grpc-proxy does), so
  // that clients that sync endpoints keep using the proxy: compare the member count and the cluster ID.
  view: (res) => ({ count: res.members.length, clusterId: res.header?.clusterId.toString() }),
});

// ------------------------------------------------------------------- compaction (changes the store)
differential("KV.Compact: at the current revision", async (s) => {
  const put = await must(s, KV.method.put, { key: key(s, "c"), value: enc("v") });
  return call(s, KV.method.compact, { revision: put.header!.revision, physical: true });
}, { etcd: "ok" });
differential("KV.Compact: the same revision again (compacted)", async (s) => {
  const now = await must(s, KV.method.range, { key: key(s, "c") });
  return call(s, KV.method.compact, { revision: now.kvs[0]!.modRevision });
}, { etcd: grpc.status.OUT_OF_RANGE });
differential("KV.Range: at a compacted revision", (s) => call(s, KV.method.range, { key: key(s, "a"), revision: 2n }), { etcd: grpc.status.OUT_OF_RANGE });
differential("Maintenance.HashKV: at a compacted revision", (s) => call(s, Maintenance.method.hashKV, { revision: 2n }), { etcd: grpc.status.OUT_OF_RANGE });

