/**
 * Who a call is charged to under --fairness (upstream/client/fairness.ts): its flow, named from the
 * client's certificate, its etcd user or its address, and its cost in seats. The listener or gateway that
 * took the call attaches the charge to the call's requestHeader object (a WeakMap, not a header: nothing a
 * client sends can set it, and it survives the callers upstream/ derives from one, such as single-flight's
 * shared caller). A call with no charge is exempt and never queues.
 *
 * A JWT's user is read without checking its signature: etcd checks it and refuses a forged one; the
 * name only picks the queues the call waits in, it grants nothing. A simple token names no user, so the
 * token is its own flow, shown as a short hash (a token never appears in /metrics).
 */
import { createHash } from "node:crypto";

/** What a flow is named after, in --fairness-flow's order: the first one known for a call wins. */
export type FlowSource = "cert" | "user" | "address";
export const FLOW_SOURCES: readonly FlowSource[] = ["cert", "user", "address"];

/** The connection a call came on: a node:net/tls socket, or node:http2's proxy of one. */
export interface Peer {
  readonly remoteAddress?: string | undefined;
  getPeerCertificate?(detailed?: boolean): { subject?: Record<string, unknown> } | null;
}

export interface Charge {
  /** The flow's name, as /metrics shows it ("cert:CN", "user:name", "token:hash", "addr:ip"). */
  readonly flow: string;
  /** The call's cost: the seats it holds toward etcd while it runs (at least 1). */
  readonly seats: number;
  /** Told etcd's answer (a Range's count teaches the next estimate of the same range). */
  readonly answered?: (res: unknown) => void;
}

const charges = new WeakMap<Headers, Charge>();

export function setCharge(requestHeader: Headers, c: Charge): void {
  charges.set(requestHeader, c);
}

export function chargeOf(requestHeader: Headers): Charge | undefined {
  return charges.get(requestHeader);
}

/** A socket's certificate subject, read once per connection. */
const subjects = new WeakMap<object, string>();

function subjectOf(peer: Peer): string {
  let s = subjects.get(peer);
  if (s !== undefined) return s;
  const subject = peer.getPeerCertificate?.(false)?.subject;
  s = !subject ? "" : typeof subject["CN"] === "string" ? subject["CN"] : Object.entries(subject).map(([k, v]) => `${k}=${String(v)}`).join(",");
  subjects.set(peer, s);
  return s;
}

/** Token → flow name, so a token is decoded or hashed once, not per call; emptied when it reaches its bound. */
const tokenFlows = new Map<string, string>();
const TOKEN_FLOWS_MAX = 4096;

/** The etcd user of `token` when the token says it (a JWT's `username` claim), else the token's own flow. */
export function tokenFlow(token: string): string {
  let flow = tokenFlows.get(token);
  if (flow !== undefined) return flow;
  flow = jwtUser(token) ?? `token:${createHash("sha256").update(token).digest("hex").slice(0, 12)}`;
  if (tokenFlows.size >= TOKEN_FLOWS_MAX) tokenFlows.clear();
  tokenFlows.set(token, flow);
  return flow;
}

function jwtUser(token: string): string | undefined {
  const parts = token.split(".");
  if (parts.length !== 3) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8")) as { username?: unknown };
    return typeof claims.username === "string" && claims.username !== "" ? `user:${claims.username}` : undefined;
  } catch {
    return undefined;
  }
}

/** The call's flow: the first of `sources` known for it, else "unknown". */
export function flowOf(requestHeader: Headers, peer: Peer | undefined, sources: readonly FlowSource[]): string {
  for (const source of sources) {
    if (source === "cert") {
      const s = peer ? subjectOf(peer) : "";
      if (s !== "") return `cert:${s}`;
    } else if (source === "user") {
      const token = requestHeader.get("token") ?? requestHeader.get("authorization");
      if (token) return tokenFlow(token);
    } else {
      const a = peer?.remoteAddress;
      if (a) return `addr:${a.startsWith("::ffff:") ? a.slice(7) : a}`;
    }
  }
  return "unknown";
}
