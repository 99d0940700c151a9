/**
 * --client-crl-file on the TLS listener: a client whose certificate chain has a serial number listed in
 * the CRL is disconnected right after the handshake, before any HTTP/2 or HTTP/1.1 server sees the
 * connection, so it completes no request on any protocol. etcd does the same check at the same point
 * (pkg/transport/listener_tls.go: checkCRL on the handshaken connection, before Accept returns it).
 */
import type * as tls from "node:tls";

/** The revoked serials of --client-crl-file (config/crl.ts reads the file, and again when it changes). */
export interface RevocationList {
  /** The first of `serials` (hex) that is revoked, or undefined; throws when the CRL cannot be read. */
  revoked(serials: string[]): string | undefined;
}

/**
 * Call before `listen`. node:http2 starts a session (or the HTTP/1.1 parser) in its own
 * 'secureConnection' listener, and bytes that arrived with the handshake are read on the next tick; a
 * listener of ours after it could be too late, so ours runs instead of it and calls it for clients that
 * pass.
 */
export function refuseRevoked(server: tls.Server, crl: RevocationList, log: (msg: string) => void): void {
  const serve = server.listeners("secureConnection") as ((socket: tls.TLSSocket) => void)[];
  // Without one, this runtime's server does not start connections from that event: refuse to run
  // rather than serve revoked clients.
  if (serve.length === 0) throw new Error("--client-crl-file: this runtime's TLS server cannot check client certificates before serving them");
  server.removeAllListeners("secureConnection");
  server.on("secureConnection", (socket: tls.TLSSocket) => {
    const refusal = check(socket, crl);
    if (refusal) {
      log(`etcd-edge: TLS client ${socket.remoteAddress}:${socket.remotePort} refused: ${refusal}`);
      socket.destroy();
      return;
    }
    for (const listener of serve) listener.call(server, socket);
  });
}

/** Why `socket` must be refused, or undefined. */
function check(socket: tls.TLSSocket, crl: RevocationList): string | undefined {
  const serials = chainSerials(socket);
  // With --trusted-ca-file every client that got here presented a verified certificate.
  if (serials.length === 0) return "no client certificate to check against --client-crl-file";
  try {
    const serial = crl.revoked(serials);
    return serial === undefined ? undefined : `certificate serial ${serial} is revoked (--client-crl-file)`;
  } catch (err) {
    // etcd refuses the connection when it cannot read the CRL; so do we.
    return (err as Error).message;
  }
}

/**
 * The client's certificate and its issuers. etcd checks every certificate the client sent; this is
 * that chain plus the trusted root, whose serial a CRL of its own does not list.
 */
function chainSerials(socket: tls.TLSSocket): string[] {
  const serials: string[] = [];
  const seen = new Set<object>();
  let cert: tls.DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
  while (cert && cert.serialNumber && !seen.has(cert)) {
    seen.add(cert);
    serials.push(cert.serialNumber);
    cert = cert.issuerCertificate;
  }
  return serials;
}
