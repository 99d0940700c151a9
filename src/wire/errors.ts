/**
 * The error texts the proxy writes itself, in one place: etcd's own messages spelled exactly as etcd
 * spells them (clientv3, etcdctl and APISIX match on the text), and the few of ours, each with its code.
 */
import { Code, ConnectError } from "@connectrpc/connect";

/** etcd's messages that the proxy itself produces. */
export const EtcdMessages = {
  compacted: "etcdserver: mvcc: required revision has been compacted",
  futureRev: "etcdserver: mvcc: required revision is a future revision",
  keyNotFound: "etcdserver: key is not provided",
  leaseNotFound: "etcdserver: requested lease not found",
  noLeader: "etcdserver: no leader",
  invalidAuthToken: "etcdserver: invalid auth token",
  permissionDenied: "etcdserver: permission denied",
} as const;

/** The caller went away or cancelled: grpc-go's wording, which clientv3 reports. */
export function canceled(): ConnectError {
  return new ConnectError("context canceled", Code.Canceled);
}

/** The caller's deadline passed: grpc-go's wording. */
export function deadlineExceeded(): ConnectError {
  return new ConnectError("context deadline exceeded", Code.DeadlineExceeded);
}

/**
 * ResourceExhausted for a message over a configured limit, in connect-es's words (the same text whichever
 * path refuses it). `limit` names the side: readMaxBytes for what is received, writeMaxBytes for sent.
 */
export function messageTooLarge(size: number, max: number, limit: "readMaxBytes" | "writeMaxBytes" = "readMaxBytes"): ConnectError {
  return new ConnectError(`message size ${size} is larger than configured ${limit} ${max}`, Code.ResourceExhausted);
}

/** A failure of ours that no client input explains: Internal, with what went wrong. */
export function internal(what: string, cause?: unknown): ConnectError {
  const reason = cause instanceof Error ? `: ${cause.message}` : "";
  return new ConnectError(`${what}${reason}`, Code.Internal, undefined, undefined, cause);
}
