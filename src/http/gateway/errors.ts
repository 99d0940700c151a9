/**
 * Errors on etcd's JSON gateway, shaped as grpc-gateway shapes them: a unary error body
 * `{"error":msg,"message":msg,"code":n}`, a mid-stream error line, and the HTTP status of each gRPC code.
 * The code and message are the handler's own (etcd's exact text, kept by upstream/errors.ts), because
 * APISIX matches on the text ("etcdserver: user name is empty" → 401).
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { goJson } from "./json.js";
import { canceled, deadlineExceeded } from "../../wire/errors.js";

/**
 * grpc-gateway's HTTPStatusFromCode. FailedPrecondition (user or role not found or already there) differs
 * between the etcd builds users run: etcd 3.4 (Debian 12's) answers 412, etcd 3.5 400; python etcd3gw
 * raises its PreconditionFailedError only on 412. preconditionStatus() picks it by the etcd behind us.
 */
const HTTP_STATUS: Record<Code, number> = {
  [Code.Canceled]: 408,
  [Code.Unknown]: 500,
  [Code.InvalidArgument]: 400,
  [Code.DeadlineExceeded]: 504,
  [Code.NotFound]: 404,
  [Code.AlreadyExists]: 409,
  [Code.PermissionDenied]: 403,
  [Code.ResourceExhausted]: 429,
  [Code.FailedPrecondition]: 400,
  [Code.Aborted]: 409,
  [Code.OutOfRange]: 400,
  [Code.Unimplemented]: 501,
  [Code.Internal]: 500,
  [Code.Unavailable]: 503,
  [Code.DataLoss]: 500,
  [Code.Unauthenticated]: 401,
};

/** Go's http.StatusText for the statuses above: the `http_status` of a stream error line. */
const STATUS_TEXT: Record<number, string> = {
  400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 408: "Request Timeout",
  409: "Conflict", 429: "Too Many Requests", 500: "Internal Server Error", 501: "Not Implemented",
  503: "Service Unavailable", 504: "Gateway Timeout",
};

export function httpStatusOf(code: Code, precondition = 412): number {
  return code === Code.FailedPrecondition ? precondition : HTTP_STATUS[code] ?? 500;
}

/** FailedPrecondition's status for an etcd of this version: 412 up to 3.4, 400 from 3.5 on. */
export function preconditionStatusFor(etcdVersion: string | undefined): number {
  const m = /^(\d+)\.(\d+)\./.exec(etcdVersion ?? "");
  if (!m) return 412;
  return Number(m[1]) > 3 || Number(m[2]) >= 5 ? 400 : 412;
}

/**
 * The error as the gateway reports it. Deadlines and cancellations that are not etcd's own get Go's
 * context texts, which is what etcd's gateway shows when its own call context ends (`Grpc-Timeout: 1n`
 * → "context deadline exceeded"); connect-es words them differently ("the operation timed out").
 */
export function gatewayError(err: unknown): ConnectError {
  const ce = ConnectError.from(err);
  if (ce.code === Code.DeadlineExceeded && !ce.rawMessage.startsWith("etcdserver:")) return deadlineExceeded();
  if (ce.code === Code.Canceled && !ce.rawMessage.startsWith("etcdserver:")) return canceled();
  return ce;
}

/** The unary error body, keys in grpc-gateway 1.x's order (3.4); clients parse it by key. */
export function errorBody(err: ConnectError): string {
  return goJson({ error: err.rawMessage, message: err.rawMessage, code: err.code });
}

/**
 * The line that ends a stream that fails after its first message. Like grpc-gateway, no newline follows
 * it: the response ends right after.
 */
export function streamErrorLine(err: ConnectError): string {
  const status = httpStatusOf(err.code);
  return goJson({ error: { grpc_code: err.code, http_code: status, message: err.rawMessage, http_status: STATUS_TEXT[status] ?? "" } });
}

/** A body that could not be read or decoded: InvalidArgument (400), as grpc-gateway reports decode errors. */
export function badRequest(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}
