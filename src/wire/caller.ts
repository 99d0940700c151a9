/**
 * Who is calling, as etcd sees it: the metadata etcd reads from a call and the identity built from it.
 * The listener fills a CallerContext from the client's headers; upstream/ carries it to etcd and keys its
 * sharing (watch streams, cached and single-flighted reads) by the identity, so two callers share an
 * answer only when etcd would give both the same.
 */

/** What a call needs of the server side; connect-es's HandlerContext fits, so upstream/ needs no server types. */
export interface CallerContext {
  readonly requestHeader: Headers;
  readonly signal: AbortSignal;
  timeoutMs(): number | undefined;
}

/**
 * Metadata etcd reads from a call: `token` (auth, as clientv3 sends it), `authorization` (etcd accepts it
 * too; its own proxy drops it) and `hasleader` (fail instead of waiting when the member has no leader).
 */
export const CALLER_METADATA = ["token", "authorization", "hasleader"] as const;

/** The caller metadata among a Node request's headers: the requestHeader of a fast path's CallerContext. */
export function callerHeaders(headers: Readonly<Record<string, string | string[] | undefined>>): Headers {
  const header = new Headers();
  for (const name of CALLER_METADATA) {
    const v = headers[name];
    if (typeof v === "string") header.set(name, v);
  }
  return header;
}

/** Only the caller metadata of `h`: what is forwarded to etcd, nothing else of the client's headers. */
export function callerMetadata(h: Headers): Headers {
  const out = new Headers();
  for (const name of CALLER_METADATA) {
    const v = h.get(name);
    if (v !== null) out.set(name, v);
  }
  return out;
}

/**
 * The caller's identity as a string key: equal for two calls exactly when etcd would treat them as the
 * same caller (same token, authorization and hasleader). U+0100 cannot occur in a header value.
 */
export function callerIdentity(h: Headers): string {
  return `${h.get("token") ?? ""}\u0100${h.get("authorization") ?? ""}\u0100${h.get("hasleader") ?? ""}`;
}
