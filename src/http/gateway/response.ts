/** The HTTP responses of the gateway, with the headers etcd's gateway sends on each kind. */
import type { ConnectError } from "@connectrpc/connect";
import { errorBody, httpStatusOf } from "./errors.js";

/**
 * Headers of a result. grpc-gateway echoes the RPC's response metadata as Grpc-Metadata-*; etcd sends
 * only its content type, so clients see `Grpc-Metadata-Content-Type: application/grpc` on every result.
 */
export const RESULT_HEADERS = { "content-type": "application/json", "grpc-metadata-content-type": "application/grpc" } as const;

export function resultResponse(json: string): Response {
  return new Response(json, { status: 200, headers: RESULT_HEADERS });
}

/**
 * `{"error":…,"message":…,"code":…}` with the HTTP status of the code, and Retry-After when the error
 * says when to retry (--fairness refusals: 429).
 */
export function errorResponse(err: ConnectError, preconditionStatus?: number): Response {
  const retryAfter = err.metadata.get("retry-after");
  const headers: Record<string, string> = retryAfter === null ? { "content-type": "application/json" } : { "content-type": "application/json", "retry-after": retryAfter };
  return new Response(errorBody(err), { status: httpStatusOf(err.code, preconditionStatus), headers });
}

/** Go's http.Error: plain text with a newline, and nosniff. grpc-gateway answers 404 and 405 this way. */
export function plainError(status: 404 | 405, text: string, extra: Record<string, string> = {}): Response {
  return new Response(`${text}\n`, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", "x-content-type-options": "nosniff", ...extra },
  });
}
