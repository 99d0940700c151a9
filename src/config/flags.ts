/**
 * The flags of `etcd-edge start`: `etcd grpc-proxy start`'s names, defaults and meaning first (so that an
 * existing command line works unchanged), then ours. Parsing follows Go's flag package, which is what
 * operators' scripts were written against: `--flag value`, `--flag=value`, `-flag`, booleans bare or
 * `=true|false`, and an empty value (`--flag ''`) meaning "unset".
 */

export type FlagKind = "string" | "bool" | "int" | "duration";

export interface FlagSpec {
  name: string;
  kind: FlagKind;
  default: string;
  help: string;
  /**
   * "later": parsed for compatibility, refused when given a non-empty value until the issue that
   * implements it lands; "ignored": accepted and has no effect here (said in the help text).
   */
  status?: "later" | "ignored";
  /** Given again, it adds a value (values are then joined by "\n", REPEAT_SEPARATOR) instead of replacing one. */
  repeatable?: boolean;
}

export const REPEAT_SEPARATOR = "\n";

const MAX_INT32 = "2147483647";

export const FLAGS: readonly FlagSpec[] = [
  // etcd grpc-proxy start
  { name: "listen-addr", kind: "string", default: "127.0.0.1:23790", help: "address to listen on for gRPC, gRPC-Web, Connect and HTTP" },
  { name: "endpoints", kind: "string", default: "127.0.0.1:2379", help: "comma separated etcd cluster endpoints (host:port, http:// or https://)" },
  { name: "discovery-srv", kind: "string", default: "", help: "domain name to query for SRV records describing cluster endpoints (_etcd-client-ssl._tcp / _etcd-client._tcp); used instead of --endpoints when it finds any" },
  { name: "discovery-srv-name", kind: "string", default: "", help: "service name to query when using DNS discovery (_etcd-client-<name>._tcp)" },
  { name: "insecure-discovery", kind: "bool", default: "false", help: "accept insecure SRV records describing cluster endpoints (without it only reachable https endpoints are kept)" },
  { name: "metrics-addr", kind: "string", default: "", help: "a second listener for /metrics and /health only (http://host:port, or https://host:port with the listener's TLS files)" },
  { name: "advertise-client-url", kind: "string", default: "127.0.0.1:23790", help: "this proxy's address as returned by MemberList; empty forwards MemberList to etcd" },
  { name: "resolver-prefix", kind: "string", default: "", help: "prefix under which the proxy registers itself in etcd (key <prefix>/<advertise-client-url>); MemberList then lists every registered proxy" },
  { name: "resolver-ttl", kind: "int", default: "0", help: "TTL (seconds) of the registration lease; required with --resolver-prefix" },
  { name: "namespace", kind: "string", default: "", help: "prefix of every key: added to what clients send, stripped from what they get (Election and Lock names too)" },
  { name: "enable-pprof", kind: "bool", default: "false", help: "Go profiling endpoints: not applicable to this proxy (use --cpu-prof of the runtime)", status: "ignored" },
  { name: "data-dir", kind: "string", default: "default.proxy", help: "directory for --auto-tls certificates (<data-dir>/fixtures/proxy)" },
  { name: "max-send-bytes", kind: "int", default: "1572864", help: "largest request (bytes) the proxy accepts and sends to etcd" },
  { name: "max-recv-bytes", kind: "int", default: MAX_INT32, help: "largest response (bytes) the proxy accepts from etcd" },
  { name: "cert", kind: "string", default: "", help: "client certificate for connecting to etcd" },
  { name: "key", kind: "string", default: "", help: "client key for connecting to etcd" },
  { name: "cacert", kind: "string", default: "", help: "CA bundle to verify etcd's certificate" },
  { name: "insecure-skip-tls-verify", kind: "bool", default: "false", help: "do not verify etcd's certificate" },
  { name: "cert-file", kind: "string", default: "", help: "listener certificate (enables TLS)" },
  { name: "key-file", kind: "string", default: "", help: "listener key" },
  { name: "trusted-ca-file", kind: "string", default: "", help: "CA for client certificates; when given, clients must present one" },
  { name: "auto-tls", kind: "bool", default: "false", help: "listener TLS with a self-signed certificate when no cert/key is given" },
  { name: "client-crl-file", kind: "string", default: "", help: "certificate revocation list checked on client certificates" },
  { name: "experimental-serializable-ordering", kind: "bool", default: "false", help: "ensure serializable reads have monotonically increasing revisions", status: "later" },
  { name: "experimental-leasing-prefix", kind: "string", default: "", help: "leasing metadata prefix for disconnected linearized reads", status: "later" },
  { name: "debug", kind: "bool", default: "false", help: "log every request" },
  { name: "max-concurrent-streams", kind: "int", default: "4294967295", help: "HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS of the listener" },
  { name: "listen-cipher-suites", kind: "string", default: "", help: "comma separated OpenSSL cipher names for the listener" },
  { name: "grpc-keepalive-min-time", kind: "duration", default: "5s", help: "accepted for compatibility: client pings are never punished", status: "ignored" },
  { name: "grpc-keepalive-interval", kind: "duration", default: "2h", help: "ping every HTTP/2 client connection this often (0 disables)" },
  { name: "grpc-keepalive-timeout", kind: "duration", default: "20s", help: "close a client connection whose ping is not answered within this (0 disables the pings)" },
  { name: "self-signed-cert-validity", kind: "int", default: "1", help: "validity of --auto-tls certificates, in years" },
  { name: "endpoints-auto-sync-interval", kind: "duration", default: "0s", help: "refresh endpoints from etcd's MemberList at this interval (0 disables)" },
  { name: "dial-keepalive-time", kind: "duration", default: "0s", help: "ping etcd after this much idle time (0 disables)" },
  { name: "dial-keepalive-timeout", kind: "duration", default: "20s", help: "ping ack timeout towards etcd" },
  { name: "permit-without-stream", kind: "bool", default: "false", help: "ping etcd even without open calls", status: "ignored" },
  { name: "tls-min-version", kind: "string", default: "TLS1.2", help: "minimum TLS version of the listener (TLS1.2 or TLS1.3)" },
  { name: "tls-max-version", kind: "string", default: "", help: "maximum TLS version of the listener (TLS1.2 or TLS1.3)" },
  // etcd-edge's own
  { name: "cors-allowed-origins", kind: "string", default: "", help: "comma separated origins (scheme://host[:port]) whose pages may call the proxy; * allows any; none by default" },
  { name: "ui", kind: "bool", default: "false", help: "serve a small key browser at /ui/ (lists keys under a prefix, updates live)" },
  { name: "discovery-srv-resolver", kind: "string", default: "", help: "DNS server(s) for --discovery-srv, comma separated host[:port]; the system's resolver by default" },
  { name: "watch-cache-prefix", kind: "string", default: "", repeatable: true, help: "keep the keys under this prefix and their recent history in memory: watches from a recent revision and ranges (linearizable, or at a recent revision) are answered from it after a count-only check at etcd; repeat for more prefixes" },
  { name: "watch-cache-history-max-events", kind: "int", default: "100000", help: "events kept per cached prefix for watches and reads at past revisions" },
  { name: "watch-cache-history-max-age", kind: "duration", default: "5m", help: "how long an event stays in a cached prefix's history" },
  { name: "watch-cache-progress-notify-interval", kind: "duration", default: "10m", help: "progress notifications to watchers fed by the watch cache that had no event in this interval (set it to etcd's --experimental-watch-progress-notify-interval)" },
  { name: "fairness", kind: "bool", default: "false", help: "share etcd between callers by fair queuing (API Priority and Fairness): calls to etcd take seats, a caller that does not fit is refused ResourceExhausted (HTTP 429); off by default so that nobody is throttled by an upgrade" },
  { name: "fairness-flow", kind: "string", default: "cert,user,address", help: "what a caller's flow is named after, the first one known wins: cert (the client certificate's subject), user (the auth token's etcd user, or the token itself), address (the client's IP)" },
  { name: "fairness-seats", kind: "int", default: "128", help: "seats in use toward etcd at most (a call takes 1, a Range 1 per 100 keys, a Txn 1 per op, at most 10): past a few dozen calls in flight etcd is busy and more only queue inside it; 128 leaves room for its best throughput" },
  { name: "fairness-flow-seats", kind: "int", default: "64", help: "seats one flow holds at most: half of --fairness-seats, so one heavy caller always leaves etcd room for the others" },
  { name: "fairness-queues", kind: "int", default: "128", help: "fair queues in all (shuffle sharding; 128 as API Priority and Fairness' default levels)" },
  { name: "fairness-hand-size", kind: "int", default: "6", help: "queues dealt to each flow; a call joins the shortest of them (6 as API Priority and Fairness)" },
  { name: "fairness-queue-length", kind: "int", default: "50", help: "calls waiting in one queue at most; one more is refused at once (50 as API Priority and Fairness)" },
  { name: "fairness-max-wait", kind: "duration", default: "5s", help: "the longest a call waits for seats before ResourceExhausted (5s: etcdctl's --command-timeout, after which its caller has given up anyway)" },
];

export type FlagValues = Record<string, string>;

export class FlagError extends Error {
  override name = "FlagError";
}

const byName = new Map(FLAGS.map((f) => [f.name, f]));

/** The values of every flag after parsing `args` (the words after `start`), defaults filled in. */
export function parseFlags(args: readonly string[], specs: ReadonlyMap<string, FlagSpec> = byName): { values: FlagValues; given: Set<string>; rest: string[] } {
  const values: FlagValues = {};
  for (const spec of specs.values()) values[spec.name] = spec.default;
  const given = new Set<string>();
  let i = 0;
  for (; i < args.length; i++) {
    const arg = args[i]!;
    // Go's flag package: "--" ends the flags, and so does the first word that is not a flag.
    if (arg === "--") { i++; break; }
    if (!arg.startsWith("-") || arg === "-") break;
    const body = arg.replace(/^--?/, "");
    const eq = body.indexOf("=");
    const name = eq === -1 ? body : body.slice(0, eq);
    const spec = specs.get(name);
    if (!spec) throw new FlagError(`unknown flag: ${arg}`);
    let value: string;
    if (eq !== -1) {
      value = body.slice(eq + 1);
    } else if (spec.kind === "bool") {
      value = "true"; // a bare boolean; `-flag false` is two words in Go too
    } else {
      if (i + 1 >= args.length) throw new FlagError(`flag needs an argument: ${arg}`);
      value = args[++i]!;
    }
    const checked = checkValue(spec, value, arg);
    values[name] = spec.repeatable && given.has(name) && checked !== "" ? `${values[name]}${REPEAT_SEPARATOR}${checked}` : checked;
    given.add(name);
  }
  return { values, given, rest: args.slice(i) };
}

function checkValue(spec: FlagSpec, value: string, arg: string): string {
  switch (spec.kind) {
    case "bool":
      if (!/^(1|0|t|f|true|false|TRUE|FALSE|True|False)$/.test(value)) throw new FlagError(`invalid boolean value "${value}" for ${arg}`);
      return /^(1|t|true)$/i.test(value) ? "true" : "false";
    case "int":
      if (value !== "" && !/^-?\d+$/.test(value)) throw new FlagError(`invalid integer value "${value}" for ${arg}`);
      return value;
    case "duration":
      if (value !== "" && parseDuration(value) === undefined) throw new FlagError(`invalid duration "${value}" for ${arg} (examples: 500ms, 5s, 2h)`);
      return value;
    default:
      return value;
  }
}

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go's time.ParseDuration for the forms people write ("0", "1.5s", "2h45m"), in milliseconds. */
export function parseDuration(text: string): number | undefined {
  if (text === "0") return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  let m: RegExpExecArray | null;
  const sign = text.startsWith("-") ? -1 : 1;
  const body = text.replace(/^[-+]/, "");
  while ((m = re.exec(body)) !== null) {
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    matched = re.lastIndex;
  }
  if (matched === 0 || matched !== body.length) return undefined;
  return sign * total;
}

export function flagSpec(name: string): FlagSpec | undefined {
  return byName.get(name);
}

/** Help text, one flag a line, in the order above. */
export function usage(): string {
  const lines = ["Usage: etcd-edge start [flags]", "", "Flags (names and defaults as in `etcd grpc-proxy start`):"];
  for (const f of FLAGS) {
    const def = f.default === "" ? "" : ` (default ${JSON.stringify(f.default)})`;
    const note = f.status === "later" ? " [not supported yet]" : f.status === "ignored" ? " [accepted, no effect]" : "";
    lines.push(`  --${f.name}${f.kind === "bool" ? "" : " " + f.kind}${def}`, `      ${f.help}${note}`);
  }
  return lines.join("\n");
}
