/**
 * etcd-edge's browser client: typed etcd clients over gRPC-Web or Connect (@connectrpc/connect-web, plain
 * fetch), and a live prefix watch over our server-streaming etcdedge.v1.Edge/Watch, which a browser can
 * call where etcd's bidi Watch is out of its reach. The --ui page and the browser test page are built on
 * it; it runs in a browser only and is bundled with esbuild, never loaded by the proxy itself.
 */
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { Edge } from "../../gen/etcdedge/v1/edge_pb.js";
import { KV, Lease, type WatchResponse } from "../../gen/etcdserverpb/rpc_pb.js";

export type BrowserProtocol = "grpc-web" | "connect";

export interface BrowserClient {
  protocol: BrowserProtocol;
  kv: Client<typeof KV>;
  lease: Client<typeof Lease>;
  /** Watch (server stream) and LeaseKeepAlive (unary): the browser forms of etcd's bidi RPCs. */
  edge: Client<typeof Edge>;
}

/** Clients of the proxy at `baseUrl` (e.g. "https://etcd-edge.example:23790") in one protocol. */
export function browserClient(baseUrl: string, protocol: BrowserProtocol = "connect"): BrowserClient {
  const transport = protocol === "grpc-web" ? createGrpcWebTransport({ baseUrl }) : createConnectTransport({ baseUrl });
  return { protocol, kv: createClient(KV, transport), lease: createClient(Lease, transport), edge: createClient(Edge, transport) };
}

const encoder = new TextEncoder();
export const enc = (s: string): Uint8Array => encoder.encode(s);

/** UTF-8 text, or undefined when the bytes are not valid UTF-8 (etcd values are arbitrary bytes). */
export function text(bytes: Uint8Array): string | undefined {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

/**
 * The [key, range_end) pair that selects every key starting with `prefix`, as clientv3's WithPrefix
 * builds it: the prefix with its last byte below 0xff incremented. The empty prefix selects every key
 * (key "\0", range_end "\0": etcd's "from this key on").
 */
export function prefixRange(prefix: string): { key: Uint8Array; rangeEnd: Uint8Array } {
  const key = enc(prefix);
  if (key.length === 0) return { key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]) };
  const end = key.slice();
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return { key, rangeEnd: end.slice(0, i + 1) };
    }
  }
  // Every byte is 0xff: no key sorts after the prefix's keys, so the range runs to the end.
  return { key, rangeEnd: new Uint8Array([0]) };
}

export interface PrefixWatch {
  /** Called once etcd has created the watch: events from here on will arrive. */
  onCreated?: (res: WatchResponse) => void;
  /** First revision to deliver; 0 or absent: from now. */
  startRevision?: bigint;
  /** Deliver the previous key-value with each event. */
  prevKv?: boolean;
  signal?: AbortSignal;
}

/**
 * The responses of one live watch on every key under `prefix`, each with its events (etcd may put
 * several events of one revision in one response). Ends when `signal` aborts (quietly) or when etcd
 * cancels the watch (the last response then has canceled=true and, for a compacted start revision,
 * compact_revision set).
 */
export async function* watchPrefix(client: BrowserClient, prefix: string, o: PrefixWatch = {}): AsyncGenerator<WatchResponse> {
  const range = prefixRange(prefix);
  const stream = client.edge.watch(
    { ...range, startRevision: o.startRevision ?? 0n, prevKv: o.prevKv ?? false },
    o.signal ? { signal: o.signal } : {},
  );
  try {
    for await (const res of stream) {
      if (res.created) {
        o.onCreated?.(res);
        if (res.events.length === 0 && !res.canceled) continue;
      }
      yield res;
    }
  } catch (err) {
    if (o.signal?.aborted) return;
    throw err;
  }
}
