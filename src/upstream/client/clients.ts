/**
 * The typed etcd clients of one endpoint: unary calls on a lean HTTP/2 caller (unary-caller.ts), streams
 * on connect-node's gRPC transport (a session of its own).
 */
import type { DescService, Message } from "@bufbuild/protobuf";
import { createClient, type CallOptions, type Client } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { Auth, Cluster, KV, Lease, Maintenance, Watch } from "../../../gen/etcdserverpb/rpc_pb.js";
import { Election } from "../../../gen/v3electionpb/v3election_pb.js";
import { Lock } from "../../../gen/v3lockpb/v3lock_pb.js";
import { UnaryCaller } from "./unary-caller.js";

export interface EtcdClients {
  kv: Client<typeof KV>;
  watch: Client<typeof Watch>;
  lease: Client<typeof Lease>;
  cluster: Client<typeof Cluster>;
  maintenance: Client<typeof Maintenance>;
  auth: Client<typeof Auth>;
  election: Client<typeof Election>;
  lock: Client<typeof Lock>;
}

/** TLS towards etcd, as read from --cacert, --cert, --key and --insecure-skip-tls-verify. */
export interface UpstreamTls {
  cert?: Buffer;
  key?: Buffer;
  ca?: Buffer;
  rejectUnauthorized: boolean;
}

export interface TransportOptions {
  url: string;
  tls: UpstreamTls | undefined;
  maxSendBytes: number;
  maxRecvBytes: number;
  keepAliveTimeMs: number;
  keepAliveTimeoutMs: number;
  /** See UnaryCaller: etcd's bytes kept with its answers (false under --namespace). */
  keepAnswerBytes: boolean;
}

export function createEtcdClients(o: TransportOptions): EtcdClients & { close(): void } {
  // node:tls options for an https endpoint, the same for both sessions. Read by each new session, not
  // copied here: `o.tls` re-reads --cert/--key/--cacert when they change (config/tls-reload.ts).
  const tls = o.url.startsWith("https:") ? liveTlsOptions(o.tls) : undefined;
  // The streams' session, ours so that close() can end it (an endpoint taken out of the list).
  const sessions = new Http2SessionManager(o.url, {
    ...(o.keepAliveTimeMs > 0 ? { pingIntervalMs: o.keepAliveTimeMs, pingTimeoutMs: o.keepAliveTimeoutMs } : {}),
    // Keep the session open between calls: reconnecting per burst would add a handshake to p99.
    idleConnectionTimeoutMs: 5 * 60_000,
  }, tls ?? {});
  const transport = createGrpcTransport({
    baseUrl: o.url,
    // etcd's answers can be large (a Range of a whole prefix); the limit is --max-recv-bytes.
    readMaxBytes: o.maxRecvBytes,
    writeMaxBytes: o.maxSendBytes,
    // etcd clients send uncompressed messages; compressing loopback traffic costs CPU for nothing.
    sendCompression: undefined,
    acceptCompression: [],
    sessionManager: sessions,
  });
  const unary = new UnaryCaller({
    url: o.url,
    tls,
    maxSendBytes: o.maxSendBytes,
    maxRecvBytes: o.maxRecvBytes,
    keepAliveTimeMs: o.keepAliveTimeMs,
    keepAliveTimeoutMs: o.keepAliveTimeoutMs,
    keepAnswerBytes: o.keepAnswerBytes,
  });
  const client = <S extends DescService>(service: S) => leanUnary(service, createClient(service, transport), unary);
  return {
    kv: client(KV),
    watch: client(Watch),
    lease: client(Lease),
    cluster: client(Cluster),
    maintenance: client(Maintenance),
    auth: client(Auth),
    election: client(Election),
    lock: client(Lock),
    close: () => {
      unary.close();
      sessions.abort();
    },
  };
}

/** node:tls options whose certificate, key and CA are read from `tls` whenever a session is made. */
function liveTlsOptions(tls: UpstreamTls | undefined): { ca?: Buffer; cert?: Buffer; key?: Buffer; rejectUnauthorized: boolean } {
  return {
    get ca() { return tls?.ca; },
    get cert() { return tls?.cert; },
    get key() { return tls?.key; },
    rejectUnauthorized: tls?.rejectUnauthorized ?? true,
  };
}

/**
 * The connect-node client of `service` with its unary methods taken over by `unary` (unary-caller.ts):
 * the same typed interface, so callers cannot tell; streaming methods stay connect-node's.
 */
function leanUnary<S extends DescService>(service: S, streams: Client<S>, unary: UnaryCaller): Client<S> {
  const client: Record<string, unknown> = {};
  for (const method of service.methods) {
    client[method.localName] = method.methodKind === "unary"
      ? (input: Message, options?: CallOptions) => unary.call(method, input, options)
      : (streams as Record<string, unknown>)[method.localName];
  }
  return client as Client<S>;
}
