/**
 * The typed etcd clients of one endpoint, all on one HTTP/2 session (connect-node's gRPC transport).
 */
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Auth, Cluster, KV, Lease, Maintenance, Watch } from "../../gen/etcdserverpb/rpc_pb.js";
import { Election } from "../../gen/v3electionpb/v3election_pb.js";
import { Lock } from "../../gen/v3lockpb/v3lock_pb.js";
import type { UpstreamTls } from "../config/tls-files.js";

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

export interface TransportOptions {
  url: string;
  tls: UpstreamTls | undefined;
  maxSendBytes: number;
  maxRecvBytes: number;
  keepAliveTimeMs: number;
  keepAliveTimeoutMs: number;
}

export function createEtcdClients(o: TransportOptions): EtcdClients {
  const transport = createGrpcTransport({
    baseUrl: o.url,
    // etcd's answers can be large (a Range of a whole prefix); the limit is --max-recv-bytes.
    readMaxBytes: o.maxRecvBytes,
    writeMaxBytes: o.maxSendBytes,
    // etcd clients send uncompressed messages; compressing loopback traffic costs CPU for nothing.
    sendCompression: undefined,
    acceptCompression: [],
    ...(o.keepAliveTimeMs > 0 ? { pingIntervalMs: o.keepAliveTimeMs, pingTimeoutMs: o.keepAliveTimeoutMs } : {}),
    // Keep the session open between calls: reconnecting per burst would add a handshake to p99.
    idleConnectionTimeoutMs: 5 * 60_000,
    nodeOptions: o.url.startsWith("https:") ? {
      ...(o.tls?.ca ? { ca: o.tls.ca } : {}),
      ...(o.tls?.cert ? { cert: o.tls.cert } : {}),
      ...(o.tls?.key ? { key: o.tls.key } : {}),
      rejectUnauthorized: o.tls?.rejectUnauthorized ?? true,
    } : {},
  });
  return {
    kv: createClient(KV, transport),
    watch: createClient(Watch, transport),
    lease: createClient(Lease, transport),
    cluster: createClient(Cluster, transport),
    maintenance: createClient(Maintenance, transport),
    auth: createClient(Auth, transport),
    election: createClient(Election, transport),
    lock: createClient(Lock, transport),
  };
}
