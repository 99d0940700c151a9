/**
 * config/: flags and options, plain data. Imports: no other src/ folder (a leaf).
 *
 * Turns parsed flag values into the options the parts of the proxy are built from. Every check that can
 * fail on a bad command line is here, so that main.ts exits with a clear message before anything listens.
 */
import { isIP } from "node:net";
import { fairnessOptions, type WithFairness } from "./fairness.js";
import { FLAGS, FlagError, parseDuration, REPEAT_SEPARATOR, type FlagValues } from "./flags.js";

export interface Endpoint {
  /** "http://host:port" or "https://host:port", as the upstream transport dials it. */
  url: string;
  tls: boolean;
}

export interface UpstreamTlsFiles {
  cert?: string;
  key?: string;
  cacert?: string;
  insecureSkipVerify: boolean;
}

export interface ListenerTlsFiles {
  certFile?: string;
  keyFile?: string;
  trustedCaFile?: string;
  clientCrlFile?: string;
  autoTls: boolean;
  cipherSuites?: string;
  minVersion: "TLSv1.2" | "TLSv1.3";
  maxVersion?: "TLSv1.2" | "TLSv1.3";
  selfSignedCertValidityYears: number;
}

/** --discovery-srv: etcd's endpoints from DNS SRV records, as etcd's pkg/srv looks them up. */
export interface DiscoveryOptions {
  domain: string;
  /** --discovery-srv-name: `_etcd-client[-ssl]-<name>._tcp.<domain>`. */
  serviceName: string;
  /** --insecure-discovery: keep http endpoints too (else only https ones that accept a connection). */
  insecure: boolean;
  /** --discovery-srv-resolver: DNS servers ("ip" or "ip:port"); empty: the system's resolver. */
  dnsServers: string[];
}

export interface ProxyOptions extends WithFairness {
  listenHost: string;
  listenPort: number;
  endpoints: Endpoint[];
  /** Returned by MemberList in place of etcd's members; empty means MemberList is forwarded to etcd. */
  advertiseClientUrl: string;
  /** --resolver-prefix: register as `<prefix>/<advertiseClientUrl>` under a lease; empty: no registration. */
  resolverPrefix: string;
  /** --resolver-ttl: TTL (s) of the registration lease; >= 1 whenever resolverPrefix is set. */
  resolverTtlSec: number;
  /** Set with --discovery-srv: the endpoints come from DNS, `endpoints` is the fallback (as in etcd). */
  discovery?: DiscoveryOptions;
  /** --endpoints-auto-sync-interval: replace the endpoints with etcd's members' client URLs this often; 0: off. */
  endpointsAutoSyncIntervalMs: number;
  dataDir: string;
  /** Largest request accepted from a client and sent to etcd (grpc-proxy's --max-send-bytes). */
  maxSendBytes: number;
  /** Largest response accepted from etcd (grpc-proxy's --max-recv-bytes). */
  maxRecvBytes: number;
  upstreamTls: UpstreamTlsFiles;
  listenerTls: ListenerTlsFiles;
  debug: boolean;
  maxConcurrentStreams: number;
  /** Ping etcd after this much idle time; 0 disables (grpc-proxy's --dial-keepalive-time). */
  dialKeepAliveTimeMs: number;
  dialKeepAliveTimeoutMs: number;
  /** Origins allowed to call from a browser (CORS): exact origins, or ["*"]; empty: no CORS headers. */
  corsAllowedOrigins: string[];
  /** Serve the key browser at /ui/. Off by default: it shows every key the caller can read. */
  ui: boolean;
  /** --metrics-addr: a second listener serving /metrics and /health only; https uses the listener's TLS. */
  metricsListener?: MetricsListener;
  /**
   * --grpc-keepalive-interval/-timeout: ping each HTTP/2 client connection every intervalMs and close it when
   * a ping is not answered within timeoutMs (grpc-go's server keepalive, as etcd's proxy sets it); either 0: off.
   */
  grpcKeepAliveIntervalMs: number;
  grpcKeepAliveTimeoutMs: number;
  /** --namespace: the prefix of every key in etcd (clients never see it); empty: none. */
  namespace: string;
  /** --watch-cache-*: prefixes kept in memory (none: no watch cache) and their history bounds. */
  watchCache: { prefixes: string[]; maxEvents: number; maxAgeMs: number; progressNotifyMs: number };
}

export interface MetricsListener {
  scheme: "http" | "https";
  host: string;
  port: number;
}

const TLS_VERSIONS: Record<string, "TLSv1.2" | "TLSv1.3"> = { "TLS1.2": "TLSv1.2", "TLS1.3": "TLSv1.3" };

export function buildOptions(values: FlagValues, given: ReadonlySet<string>): ProxyOptions {
  for (const spec of FLAGS) {
    if (spec.status !== "later" || !given.has(spec.name)) continue;
    const value = values[spec.name]!;
    const isUnset = value === "" || value === spec.default || (spec.kind === "bool" && value === "false");
    if (!isUnset) throw new FlagError(`--${spec.name} is not supported yet by etcd-edge`);
  }
  const upstreamTls: UpstreamTlsFiles = {
    insecureSkipVerify: values["insecure-skip-tls-verify"] === "true",
    ...optional("cert", values["cert"]),
    ...optional("key", values["key"]),
    ...optional("cacert", values["cacert"]),
  };
  if (Boolean(upstreamTls.cert) !== Boolean(upstreamTls.key)) throw new FlagError("--cert and --key must be given together");
  const wantsTls = Boolean(upstreamTls.cert || upstreamTls.cacert || upstreamTls.insecureSkipVerify);
  const listenerTls: ListenerTlsFiles = {
    autoTls: values["auto-tls"] === "true",
    minVersion: tlsVersion(values["tls-min-version"]!, "--tls-min-version") ?? "TLSv1.2",
    selfSignedCertValidityYears: positiveInt(values["self-signed-cert-validity"]!, "--self-signed-cert-validity"),
    ...optional("certFile", values["cert-file"]),
    ...optional("keyFile", values["key-file"]),
    ...optional("trustedCaFile", values["trusted-ca-file"]),
    ...optional("clientCrlFile", values["client-crl-file"]),
    ...optional("cipherSuites", values["listen-cipher-suites"]),
  };
  const maxVersion = tlsVersion(values["tls-max-version"]!, "--tls-max-version");
  if (maxVersion) listenerTls.maxVersion = maxVersion;
  if (maxVersion === "TLSv1.2" && listenerTls.minVersion === "TLSv1.3") throw new FlagError("--tls-min-version is greater than --tls-max-version");
  if (Boolean(listenerTls.certFile) !== Boolean(listenerTls.keyFile)) throw new FlagError("--cert-file and --key-file must be given together");
  // etcd's proxy refuses this too ("KeyFile and CertFile are not presented"). --client-crl-file without TLS
  // is accepted and has no effect, as in etcd (tls-files.ts warns).
  if (listenerTls.trustedCaFile && !listenerTls.certFile && !listenerTls.autoTls) {
    throw new FlagError("--trusted-ca-file needs listener TLS (--cert-file/--key-file or --auto-tls)");
  }
  const [listenHost, listenPort] = hostPort(values["listen-addr"]!, "--listen-addr", true);
  const resolver = resolverOptions(values);
  const discovery = discoveryOptions(values);
  return {
    listenHost,
    listenPort,
    endpoints: parseEndpoints(values["endpoints"]!, wantsTls),
    advertiseClientUrl: values["advertise-client-url"]!,
    ...resolver,
    ...(discovery ? { discovery } : {}),
    endpointsAutoSyncIntervalMs: Math.max(0, parseDuration(values["endpoints-auto-sync-interval"] || "0") ?? 0),
    dataDir: values["data-dir"] || "default.proxy",
    maxSendBytes: positiveInt(values["max-send-bytes"]!, "--max-send-bytes"),
    maxRecvBytes: positiveInt(values["max-recv-bytes"]!, "--max-recv-bytes"),
    upstreamTls,
    listenerTls,
    debug: values["debug"] === "true",
    maxConcurrentStreams: Math.min(positiveInt(values["max-concurrent-streams"]!, "--max-concurrent-streams"), 2 ** 32 - 1),
    dialKeepAliveTimeMs: parseDuration(values["dial-keepalive-time"] || "0") ?? 0,
    dialKeepAliveTimeoutMs: parseDuration(values["dial-keepalive-timeout"] || "20s") ?? 20_000,
    corsAllowedOrigins: parseOrigins(values["cors-allowed-origins"]!),
    ui: values["ui"] === "true",
    watchCache: watchCacheOptions(values),
    fairness: fairnessOptions(values),
    ...metricsListener(values["metrics-addr"]!, listenerTls),
    grpcKeepAliveIntervalMs: Math.max(0, parseDuration(values["grpc-keepalive-interval"] || "0") ?? 0),
    grpcKeepAliveTimeoutMs: Math.max(0, parseDuration(values["grpc-keepalive-timeout"] || "0") ?? 0),
    namespace: values["namespace"]!,
  };
}

/** etcd's checkArgs, with its words: a prefix needs a TTL, a TTL needs a prefix, and both need an address. */
function resolverOptions(values: FlagValues): { resolverPrefix: string; resolverTtlSec: number } {
  const resolverPrefix = values["resolver-prefix"]!;
  const resolverTtlSec = Number(values["resolver-ttl"] || "0");
  if (resolverPrefix !== "" && resolverTtlSec < 1) throw new FlagError(`invalid resolver-ttl ${resolverTtlSec}`);
  if (resolverPrefix === "" && resolverTtlSec > 0) throw new FlagError(`invalid resolver-prefix ${JSON.stringify(resolverPrefix)}`);
  if (resolverPrefix !== "" && values["advertise-client-url"] === "") throw new FlagError(`invalid advertise-client-url ""`);
  return { resolverPrefix, resolverTtlSec };
}

/** --discovery-srv-name and --discovery-srv-resolver mean nothing without --discovery-srv (etcd ignores the name too). */
function discoveryOptions(values: FlagValues): DiscoveryOptions | undefined {
  const domain = values["discovery-srv"]!;
  if (domain === "") return undefined;
  const dnsServers = values["discovery-srv-resolver"]!.split(",").map((s) => s.trim()).filter(Boolean);
  for (const server of dnsServers) {
    // node:dns takes addresses only ("1.2.3.4", "1.2.3.4:53", "::1", "[::1]:53"), never names.
    const m = /^(?:\[([^\]]+)\]|([^:\[\]]+))(?::(\d{1,5}))?$/.exec(server);
    const ip = m?.[1] ?? m?.[2] ?? server;
    if (isIP(ip) === 0 || (m?.[3] !== undefined && Number(m[3]) > 65535)) {
      throw new FlagError(`--discovery-srv-resolver: "${server}" is not an IP address with an optional port`);
    }
  }
  return { domain, serviceName: values["discovery-srv-name"]!, insecure: values["insecure-discovery"] === "true", dnsServers };
}

/**
 * --metrics-addr as etcd's proxy reads it (url.Parse, then transport.NewListener): `http://host:port` or
 * `https://host:port`; https serves with the listener's TLS files, and without them etcd refuses to start.
 */
function metricsListener(text: string, tls: ListenerTlsFiles): { metricsListener?: MetricsListener } {
  if (text === "") return {};
  const m = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)\/?$/i.exec(text);
  if (!m) throw new FlagError(`--metrics-addr: expected http://host:port or https://host:port, got "${text}"`);
  const scheme = m[1]!.toLowerCase();
  if (scheme !== "http" && scheme !== "https") throw new FlagError(`--metrics-addr: unsupported scheme in "${text}" (use http or https)`);
  if (scheme === "https" && !tls.certFile && !tls.autoTls) {
    throw new FlagError(`--metrics-addr ${text}: https needs listener TLS (--cert-file/--key-file or --auto-tls), as etcd's proxy`);
  }
  const [host, port] = hostPort(m[2]!, "--metrics-addr", true);
  return { metricsListener: { scheme, host, port } };
}

function optional<K extends string>(key: K, value: string | undefined): Partial<Record<K, string>> {
  return value ? ({ [key]: value } as Record<K, string>) : {};
}

function tlsVersion(value: string, flag: string): "TLSv1.2" | "TLSv1.3" | undefined {
  if (value === "") return undefined;
  const v = TLS_VERSIONS[value];
  if (!v) throw new FlagError(`${flag}: unknown TLS version "${value}" (use TLS1.2 or TLS1.3)`);
  return v;
}

function positiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new FlagError(`${flag} must be a positive integer, got "${value}"`);
  return n;
}

/** "host:port" → [host, port]. For the listener, `localhost` binds the IPv4 loopback, as etcd's proxy does. */
export function hostPort(addr: string, flag: string, bindLocalhostAsIPv4 = false): [string, number] {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(addr);
  if (!m) throw new FlagError(`${flag}: expected host:port, got "${addr}"`);
  const port = Number(m[3]);
  if (port > 65535) throw new FlagError(`${flag}: port out of range in "${addr}"`);
  let host = m[1] ?? m[2] ?? "";
  if (bindLocalhostAsIPv4 && host === "localhost") host = "127.0.0.1";
  if (bindLocalhostAsIPv4 && host === "") host = "0.0.0.0";
  if (host === "") throw new FlagError(`${flag}: missing host in "${addr}"`);
  return [host, port];
}

/**
 * etcd's endpoint syntax: a comma list of `host:port`, `http://host:port` or `https://host:port`.
 * A scheme-less endpoint is dialled over TLS when any upstream TLS flag is given, as clientv3 does.
 */
export function parseEndpoints(text: string, tlsByDefault: boolean): Endpoint[] {
  const list = text.split(",").map((s) => s.trim()).filter(Boolean);
  if (list.length === 0) throw new FlagError("--endpoints: at least one endpoint is required");
  return list.map((raw) => {
    let scheme = tlsByDefault ? "https" : "http";
    let rest = raw;
    const m = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/i.exec(raw);
    if (m) {
      scheme = m[1]!.toLowerCase();
      rest = m[2]!.replace(/\/+$/, "");
      if (scheme === "unix" || scheme === "unixs") throw new FlagError(`--endpoints: unix sockets are not supported ("${raw}")`);
      if (scheme !== "http" && scheme !== "https") throw new FlagError(`--endpoints: unknown scheme in "${raw}"`);
    }
    const [host, port] = hostPort(rest, "--endpoints");
    const h = host.includes(":") ? `[${host}]` : host;
    return { url: `${scheme}://${h}:${port}`, tls: scheme === "https" };
  });
}

/**
 * `--cors-allowed-origins`: a comma list of origins as browsers send them in the Origin header
 * (`https://app.example.com`, `http://127.0.0.1:8080`), or `*` alone; written as the browser normalises
 * it (lower case, no default port). A path or a typo would silently never match, so anything that is not
 * an origin is refused at start.
 */
export function parseOrigins(text: string): string[] {
  const list = text.split(",").map((s) => s.trim()).filter(Boolean);
  if (list.includes("*")) {
    if (list.length > 1) throw new FlagError("--cors-allowed-origins: * allows every origin and cannot be combined with others");
    return ["*"];
  }
  return list.map((origin) => {
    let url: URL;
    try {
      url = new URL(origin);
    } catch {
      throw new FlagError(`--cors-allowed-origins: "${origin}" is not an origin (expected scheme://host[:port])`);
    }
    const bare = url.pathname === "/" && !url.search && !url.hash && !url.username && !url.password;
    if ((url.protocol !== "http:" && url.protocol !== "https:") || !bare || !url.hostname) {
      throw new FlagError(`--cors-allowed-origins: "${origin}" is not an origin (expected scheme://host[:port], no path)`);
    }
    return url.origin;
  });
}

/** --watch-cache-prefix (each non-empty, no two overlapping: one event would then live twice) and its bounds. */
function watchCacheOptions(values: FlagValues): ProxyOptions["watchCache"] {
  const prefixes = (values["watch-cache-prefix"] ?? "").split(REPEAT_SEPARATOR).filter((p) => p !== "");
  for (const a of prefixes) {
    for (const b of prefixes) if (a !== b && b.startsWith(a)) throw new FlagError(`--watch-cache-prefix ${JSON.stringify(b)} is inside --watch-cache-prefix ${JSON.stringify(a)}`);
  }
  return {
    prefixes: [...new Set(prefixes)],
    maxEvents: positiveInt(values["watch-cache-history-max-events"]!, "--watch-cache-history-max-events"),
    maxAgeMs: parseDuration(values["watch-cache-history-max-age"] || "5m") ?? 300_000,
    progressNotifyMs: Math.max(100, parseDuration(values["watch-cache-progress-notify-interval"] || "10m") ?? 600_000),
  };
}
