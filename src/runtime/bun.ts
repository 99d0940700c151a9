/**
 * Bun's requirements. Bun 1.3.x leaves an HTTP/1.1 connection handed over with `emit("connection")`
 * unanswered and ignores `allowHTTP1` on the TLS server, so HTTP/1.1 (gRPC-Web, Connect from browsers,
 * curl /health) would hang on either listener. 1.4 fixed both; older versions are refused at start with
 * a message saying so, rather than listening and hanging.
 */

/** The oldest Bun the listener works on. */
export const MIN_BUN: readonly [number, number] = [1, 4];

/** Why this Bun cannot run the proxy, or undefined when it can. */
export function bunUnsupported(version: string): string | undefined {
  const [major, minor] = version.split(".").map((n) => Number.parseInt(n, 10));
  if (major === undefined || minor === undefined || Number.isNaN(major) || Number.isNaN(minor)) return undefined;
  const tooOld = major < MIN_BUN[0] || (major === MIN_BUN[0] && minor < MIN_BUN[1]);
  return tooOld ? `Bun ${version} is not supported: HTTP/1.1 on the listener needs Bun >= ${MIN_BUN.join(".")}` : undefined;
}
