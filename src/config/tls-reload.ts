/**
 * TLS files read again when they change, without a restart. etcd reads its certificates for every new
 * connection (pkg/transport: GetCertificate and GetClientCertificate load the files each handshake), so a
 * renewed certificate (cert-manager, a Kubernetes secret, an ACME client) counts at once; the proxy is
 * expected to follow the same files. A change is seen by size, mtime and inode (statSync follows symlinks,
 * so a Kubernetes secret volume's swapped `..data` link counts), then the files are read and checked as at
 * start (tls-files.ts); a set that fails (a key that does not match its certificate halfway through a
 * rotation, a certificate that cannot serve its role) is not used: the previous one stays, with a warning,
 * and the files are tried again when they change again.
 *
 * - Listener (--cert-file, --key-file, --trusted-ca-file): checked every LISTENER_CHECK_MS, and the new
 *   material handed to the listener (node:tls setSecureContext): new connections use it, open ones keep theirs.
 * - Upstream (--cert, --key, --cacert): checked whenever a new session to etcd reads them; open sessions
 *   keep theirs (etcd rechecks nothing on an open connection either).
 */
import { readFileSync, statSync } from "node:fs";
import { createSecureContext } from "node:tls";
import type { ListenerTlsFiles, UpstreamTlsFiles } from "./options.js";
import { checkListenerCert, checkUpstreamCert, type ListenerTls, type UpstreamTls } from "./tls-files.js";

/**
 * How often the listener's files are looked at: a renewed certificate serves within a second, for two or
 * three stat() calls a second.
 */
export const LISTENER_CHECK_MS = 1_000;

/** What changes when a file is rewritten or replaced; "missing" while it is not there. */
function stampOf(paths: readonly string[]): string {
  return paths.map((path) => {
    try {
      const st = statSync(path);
      return `${st.size}:${st.mtimeMs}:${st.ino}`;
    } catch {
      return "missing";
    }
  }).join("|");
}

/**
 * The files of one side: `load` reads and checks them; `current()` is the last set that passed, re-read
 * first when the files changed since. Not re-read for a stamp that already failed (no warning per check).
 */
class Reloading<T> {
  private applied: string;
  private refused: string | undefined;

  constructor(private readonly paths: readonly string[], private value: T, private readonly load: () => T, private readonly note: (line: string) => void, private readonly what: string) {
    this.applied = stampOf(paths);
  }

  /** Whether a new set was taken. */
  refresh(): boolean {
    const stamp = stampOf(this.paths);
    if (stamp === this.applied || stamp === this.refused) return false;
    try {
      this.value = this.load();
    } catch (err) {
      this.refused = stamp;
      this.note(`etcd-edge: ${this.what}: keeping the certificate in use: ${(err as Error).message}`);
      return false;
    }
    this.applied = stamp;
    this.refused = undefined;
    this.note(`etcd-edge: ${this.what}: reloaded ${this.paths.join(", ")}`);
    return true;
  }

  current(): T {
    return this.value;
  }
}

function readOrThrow(path: string, flag: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`${flag}: cannot read ${path}: ${(err as Error).message}`);
  }
}

/**
 * Polls the listener's files; `apply` gets each new set that passed the checks. Nothing to watch with
 * --auto-tls (its certificate is made once). Returns the stop function.
 */
export function watchListenerTls(files: ListenerTlsFiles, initial: ListenerTls, apply: (tls: ListenerTls) => void, note: (line: string) => void): () => void {
  const { certFile, keyFile, trustedCaFile } = files;
  if (!certFile || !keyFile) return () => {};
  const paths = [certFile, keyFile, ...(trustedCaFile ? [trustedCaFile] : [])];
  const watched = new Reloading(paths, initial, () => {
    const cert = readOrThrow(certFile, "--cert-file");
    checkListenerCert(cert, certFile);
    const key = readOrThrow(keyFile, "--key-file");
    const ca = trustedCaFile ? readOrThrow(trustedCaFile, "--trusted-ca-file") : undefined;
    // What node:tls would refuse (a key of another certificate): refused here, before the listener has it.
    createSecureContext({ cert, key, ...(ca ? { ca } : {}) });
    const next: ListenerTls = { ...initial, cert, key, ...(ca ? { ca } : {}) };
    apply(next);
    return next;
  }, note, "listener TLS");
  const timer = setInterval(() => watched.refresh(), LISTENER_CHECK_MS);
  timer.unref?.();
  return () => clearInterval(timer);
}

/**
 * `initial` (as loadUpstreamTls read it) with `cert`, `key` and `ca` read again from their files when a
 * session reads them and the files changed. All reads in one synchronous run (node:tls copies the options
 * once per connection) see the same set, so a certificate never goes out with another one's key.
 */
export function liveUpstreamTls(files: UpstreamTlsFiles, initial: UpstreamTls, note: (line: string) => void): UpstreamTls {
  const { cert: certFile, key: keyFile, cacert } = files;
  const paths = [certFile, keyFile, cacert].filter((p): p is string => Boolean(p));
  if (paths.length === 0) return initial;
  const watched = new Reloading(paths, initial, () => {
    const next: UpstreamTls = { rejectUnauthorized: initial.rejectUnauthorized };
    if (certFile) {
      next.cert = readOrThrow(certFile, "--cert");
      checkUpstreamCert(next.cert, certFile);
    }
    if (keyFile) next.key = readOrThrow(keyFile, "--key");
    if (cacert) next.ca = readOrThrow(cacert, "--cacert");
    createSecureContext({ ...(next.cert ? { cert: next.cert } : {}), ...(next.key ? { key: next.key } : {}), ...(next.ca ? { ca: next.ca } : {}) });
    return next;
  }, note, "TLS to etcd");
  let snapshot: UpstreamTls | undefined;
  const now = (): UpstreamTls => {
    if (snapshot) return snapshot;
    watched.refresh();
    snapshot = watched.current();
    queueMicrotask(() => { snapshot = undefined; });
    return snapshot;
  };
  return {
    rejectUnauthorized: initial.rejectUnauthorized,
    get cert() { return now().cert; },
    get key() { return now().key; },
    get ca() { return now().ca; },
  };
}
