/**
 * One place where failures become the error a client sees. etcd's errors keep etcd's exact code and
 * message text, because clientv3, etcdctl and APISIX match on the text ("etcdserver: requested lease not
 * found", "etcdserver: mvcc: required revision has been compacted"). etcd's own proxy turns most of them
 * into Unknown; we do not.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { canceled } from "../../wire/errors.js";

/** An error from a call to etcd, as the client should see it: etcd's code and raw message, nothing else. */
export function fromUpstream(err: unknown): ConnectError {
  const ce = ConnectError.from(err);
  if (ce.code === Code.Canceled && ce.rawMessage.includes("operation was aborted")) {
    // Our own abort (the client went away or its deadline passed) surfaces as Canceled from the transport.
    return canceled();
  }
  return new ConnectError(ce.rawMessage, ce.code);
}

/** True when a call failed because no etcd endpoint could be reached (worth trying another endpoint). */
export function isUnreachable(err: unknown): boolean {
  const ce = ConnectError.from(err);
  return ce.code === Code.Unavailable && !ce.rawMessage.startsWith("etcdserver:");
}
