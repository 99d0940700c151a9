/**
 * What an HTTP request tells the RPC besides its body, as grpc-gateway reads it: `Authorization` becomes
 * metadata `authorization` (etcd takes the raw token there), `Grpc-Metadata-<Key>` becomes `<key>`
 * (`token`, `hasleader`), `Grpc-Timeout` a deadline, and the request's abort signal cancels the call.
 */
import type { Peer } from "../../wire/flow.js";
import { clampTimer, gatewayTimeout } from "../../wire/timeout.js";

export interface CallMetadata {
  headers: Headers;
  /** undefined: no deadline. */
  timeoutMs: number | undefined;
  /** The deadline is already over (a Grpc-Timeout below 1 ms): etcd's gateway fails such calls at once. */
  expired: boolean;
  /** The client's connection (--fairness names the caller's flow by its certificate or address). */
  peer?: Peer | undefined;
}

const METADATA_PREFIX = "grpc-metadata-";

/**
 * Metadata keys never taken from Grpc-Metadata-*: they are the in-process call's own protocol headers,
 * and a client could otherwise break the call's framing (Grpc-Metadata-Content-Type).
 */
const PROTOCOL_HEADER = /^(content-|accept-|connect-|grpc-|te$|host$|connection$|transfer-encoding$|keep-alive$|upgrade$)/;

export function callMetadata(req: Request): CallMetadata {
  const headers = new Headers();
  for (const [name, value] of req.headers) {
    if (name === "authorization") headers.set("authorization", value);
    else if (name.startsWith(METADATA_PREFIX)) {
      const key = name.slice(METADATA_PREFIX.length);
      if (key !== "" && !PROTOCOL_HEADER.test(key)) headers.append(key, value);
    }
  }
  const timeout = req.headers.get("grpc-timeout");
  if (timeout === null) return { headers, timeoutMs: undefined, expired: false };
  const ms = gatewayTimeout(timeout);
  // A deadline under 1 ms cannot be carried (Connect counts whole milliseconds) and would be over before
  // etcd saw the call anyway.
  if (ms < 1) return { headers, timeoutMs: undefined, expired: true };
  return { headers, timeoutMs: clampTimer(Math.floor(ms)), expired: false };
}
