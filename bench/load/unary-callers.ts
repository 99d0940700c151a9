/**
 * Callers for the closed loop: the same kind of call made three ways. Raw gRPC (encoded once, the
 * cheapest Node can do), connect-node clients in each protocol a user may speak, and HTTP/1.1 JSON to a
 * `/v3/kv/range` gateway. Each opens its connections up front and closes them in `close()`.
 */
import * as http from "node:http";
import { create } from "@bufbuild/protobuf";
import { createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { fromBinary } from "@bufbuild/protobuf";
import { KV, RangeRequestSchema, TxnResponseSchema } from "../../gen/etcdserverpb/rpc_pb.js";
import { unary } from "./grpc-raw.js";
import { casKey, casRequest, HOT_KEY, MANY_KEYS, manyKey, PATH, putRequests, rangeKeyRequest, rangeRequest } from "./messages.js";
import type { ConnectProtocol, LoopShape, RawRequestKind } from "./protocol.js";
import { SessionPool } from "./sessions.js";
import type { Caller } from "./unary-loop.js";

export interface CallerSet {
  call: Caller;
  close(): void | Promise<void>;
  /** Counts for the result (reconnects, ...). */
  extra?(): Record<string, number>;
}

export async function rawCaller(url: string, kind: RawRequestKind, shape: LoopShape): Promise<CallerSet> {
  const pool = await SessionPool.open(url, shape.connections);
  let path: string = PATH.range;
  let requestFor: (slot: number) => Buffer;
  /** Slots whose first reply is checked: a Txn that took the failure branch measured a read, not a CAS. */
  const unchecked = new Set<number>();
  if (kind === "range-serializable" || kind === "range-linearizable") {
    const req = rangeRequest(kind === "range-serializable");
    requestFor = () => req;
  } else if (kind === "range-linearizable-many") {
    // Each call reads one of MANY_KEYS keys at random: single-flight rarely finds a read to share.
    const reqs = Array.from({ length: MANY_KEYS }, (_, i) => rangeKeyRequest(manyKey(i), false));
    requestFor = () => reqs[Math.floor(Math.random() * reqs.length)]!;
  } else if (kind === "put") {
    path = PATH.put;
    const reqs = putRequests(1024);
    let next = 0;
    requestFor = () => reqs[next++ % reqs.length]!;
  } else {
    path = PATH.txn;
    // One key per slot: concurrent CAS on one key would measure etcd's conflicts, not the proxy.
    const reqs = new Map<number, Buffer>();
    requestFor = (slot) => {
      let r = reqs.get(slot);
      if (!r) {
        reqs.set(slot, (r = casRequest(slot)));
        unchecked.add(slot);
      }
      return r;
    };
  }
  return {
    call: (slot, done) => {
      const req = requestFor(slot);
      if (!unchecked.delete(slot)) return unary(pool.get(slot), path, req, (err) => done(err));
      unary(pool.get(slot), path, req, (err, reply) => {
        if (err || !reply) return done(err ?? "no reply");
        done(fromBinary(TxnResponseSchema, reply).succeeded ? undefined : `Txn on ${casKey(slot)} took the failure branch (key not seeded?)`);
      }, true);
    },
    close: () => pool.close(),
    extra: () => ({ reconnects: pool.reconnects }),
  };
}

function transportFor(protocol: ConnectProtocol, baseUrl: string): Transport {
  switch (protocol) {
    case "grpc": return createGrpcTransport({ baseUrl });
    case "grpc-web": return createGrpcWebTransport({ baseUrl, httpVersion: "2" });
    case "connect-binary": return createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true });
    case "connect-json": return createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: false });
  }
}

/** connect-node clients, one transport (one HTTP/2 connection) per connection of the shape. */
export async function connectCaller(url: string, protocol: ConnectProtocol, shape: LoopShape): Promise<CallerSet> {
  const clients = Array.from({ length: shape.connections }, () => createClient(KV, transportFor(protocol, url)));
  const req = create(RangeRequestSchema, { key: new TextEncoder().encode(HOT_KEY), serializable: true });
  // Open every connection before the window, so connection setup is not measured.
  await Promise.all(clients.map((c) => c.range(req)));
  return {
    call: (slot, done) => {
      clients[slot % clients.length]!.range(req).then(
        (res) => done(res.kvs.length === 1 ? undefined : `expected 1 kv, got ${res.kvs.length}`),
        (err: unknown) => done(err instanceof Error ? err.message : String(err)),
      );
    },
    // connect-node's session manager closes idle connections itself; the process exits right after.
    close: () => {},
  };
}

/** etcd's JSON gateway: POST /v3/kv/range over HTTP/1.1 keep-alive, one socket per slot. */
export async function gatewayCaller(url: string, shape: LoopShape, serializable: boolean): Promise<CallerSet> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: shape.concurrency });
  // Linearizable is the JSON default (the field left out), as curl users send it.
  const body = Buffer.from(JSON.stringify({ key: Buffer.from(HOT_KEY).toString("base64"), ...(serializable ? { serializable: true } : {}) }));
  const target = new URL("/v3/kv/range", url);
  const call: Caller = (_slot, done) => {
    const req = http.request(target, { method: "POST", agent, headers: { "content-type": "application/json", "content-length": body.length } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        if (res.statusCode !== 200) return done(`HTTP ${res.statusCode}: ${Buffer.concat(chunks).toString().slice(0, 200)}`);
        done(Buffer.concat(chunks).includes('"kvs"') ? undefined : "reply without kvs");
      });
      res.on("error", (err) => done(err.message));
    });
    req.on("error", (err) => done(err.message));
    req.end(body);
  };
  await new Promise<void>((resolve, reject) => call(0, (err) => (err ? reject(new Error(`${target}: ${err}`)) : resolve())));
  return { call, close: () => agent.destroy() };
}
