/**
 * A call's deadline from its header, one parser per syntax: gRPC and gRPC-Web's grpc-timeout and
 * Connect's connect-timeout-ms with connect-es's own rules (so the fast paths and connect-es's handlers
 * give the same answer to the same header), and the JSON gateway's Grpc-Timeout with grpc-gateway's.
 * Every deadline is held at the longest a timer can wait: Node fires a longer setTimeout at once, and
 * grpc-go sends a 30-day context as `2592000S`.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { parseTimeout as parseConnect } from "@connectrpc/connect/protocol-connect";
import { parseTimeout as parseGrpc } from "@connectrpc/connect/protocol-grpc";

/** The longest timer: 2^31-1 ms, about 24.8 days. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** ms from now, undefined for no deadline, or the error for a malformed header (InvalidArgument). */
export type Timeout = number | undefined | ConnectError;

export function grpcTimeout(value: string | string[] | undefined): Timeout {
  return settle(parseGrpc(typeof value === "string" ? value : null, Number.MAX_SAFE_INTEGER));
}

export function connectTimeout(value: string | string[] | undefined): Timeout {
  return settle(parseConnect(typeof value === "string" ? value : null, Number.MAX_SAFE_INTEGER));
}

function settle(t: { timeoutMs?: number; error?: ConnectError }): Timeout {
  if (t.error) return t.error;
  return t.timeoutMs === undefined ? undefined : clampTimer(t.timeoutMs);
}

/** Whole milliseconds (a fractional grpc-timeout made etcd reset the stream), at least 1, at most a timer's. */
export function clampTimer(ms: number): number {
  return Math.min(Math.max(1, Math.ceil(ms)), MAX_TIMER_MS);
}

/** A grpc-timeout header value for `ms` that every gRPC server takes (at most 8 digits). */
export function grpcTimeoutHeader(ms: number): string {
  const whole = clampTimer(ms);
  return whole < 1e8 ? `${whole}m` : `${Math.ceil(whole / 1000)}S`;
}

const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

/**
 * grpc-gateway's reading of Grpc-Timeout: up to 19 digits, a sign allowed, its own wording when it is
 * not one. Returns ms, possibly 0 or negative (already expired: the gateway fails such calls at once).
 */
export function gatewayTimeout(text: string): number {
  const m = /^(-?\d{1,19})([HMSmun])$/.exec(text);
  if (!m) throw new ConnectError(`invalid grpc-timeout: ${text}`, Code.InvalidArgument);
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}
