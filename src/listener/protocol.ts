/** Which RPC protocol a request speaks (wire.md §1), decided here once for routing and for metrics. */
import type { Protocol } from "../observe/rpc-metrics.js";

/** The protocol of a request, from its content type. Connect GET requests have none. */
export function protocolOf(contentType: string | null | undefined): Protocol {
  if (!contentType) return "connect";
  if (contentType.startsWith("application/grpc-web")) return "grpc-web";
  if (contentType.startsWith("application/grpc")) return "grpc";
  return "connect";
}

/** A message encoding header that means "not compressed". */
export function isIdentity(encoding: string | string[] | undefined): boolean {
  return encoding === undefined || encoding === "identity";
}
