/**
 * `etcd-edge start`'s command line, parsed as Go's flag package parses `etcd grpc-proxy start`'s
 * (src/config/flags.ts), and turned into options (src/config/options.ts). Pure logic: no processes.
 */
import t from "tap";
import { FLAGS, FlagError, parseDuration, parseFlags } from "../../src/config/flags.js";
import { buildOptions, hostPort, parseEndpoints } from "../../src/config/options.js";

const parse = (...args: string[]) => parseFlags(args);
const options = (...args: string[]) => {
  const { values, given } = parseFlags(args);
  return buildOptions(values, given);
};

t.test("defaults are grpc-proxy's", async (t) => {
  const { values, given, rest } = parse();
  t.equal(given.size, 0);
  t.same(rest, []);
  t.equal(values["listen-addr"], "127.0.0.1:23790");
  t.equal(values["endpoints"], "127.0.0.1:2379");
  t.equal(values["advertise-client-url"], "127.0.0.1:23790");
  t.equal(values["data-dir"], "default.proxy");
  t.equal(values["max-send-bytes"], "1572864");
  t.equal(values["max-recv-bytes"], "2147483647");
  t.equal(values["auto-tls"], "false");
  t.equal(Object.keys(values).length, FLAGS.length, "every flag has a value");
  const o = options();
  t.equal(o.listenHost, "127.0.0.1");
  t.equal(o.listenPort, 23790);
  t.same(o.endpoints, [{ url: "http://127.0.0.1:2379", tls: false }]);
  t.equal(o.dialKeepAliveTimeMs, 0);
  t.equal(o.dialKeepAliveTimeoutMs, 20_000);
});

t.test("value forms: --flag value, --flag=value, -flag value, -flag=value", async (t) => {
  for (const args of [["--endpoints", "10.0.0.1:2379"], ["--endpoints=10.0.0.1:2379"], ["-endpoints", "10.0.0.1:2379"], ["-endpoints=10.0.0.1:2379"]]) {
    const { values, given } = parse(...args);
    t.equal(values["endpoints"], "10.0.0.1:2379", args.join(" "));
    t.ok(given.has("endpoints"));
  }
  t.equal(parse("--endpoints=a=b:1").values["endpoints"], "a=b:1", "only the first = splits");
  t.equal(parse("--endpoints", "-x:1").values["endpoints"], "-x:1", "a value may start with a dash, as in Go");
  t.equal(parse("--debug", "--endpoints", "e:1", "--debug=false").values["debug"], "false", "the last occurrence wins");
});

t.test("booleans: bare, =true/=false and Go's other spellings", async (t) => {
  t.equal(parse("--auto-tls").values["auto-tls"], "true");
  t.equal(parse("-auto-tls").values["auto-tls"], "true");
  for (const v of ["true", "TRUE", "True", "t", "1"]) t.equal(parse(`--debug=${v}`).values["debug"], "true", v);
  for (const v of ["false", "FALSE", "False", "f", "0"]) t.equal(parse(`--debug=${v}`).values["debug"], "false", v);
  t.throws(() => parse("--debug=yes"), FlagError);
  t.throws(() => parse("--debug="), { message: /invalid boolean value "" for --debug=/ });
  // Go: a bare boolean never takes the next word, so `--debug false` leaves "false" as a positional argument.
  const { values, rest } = parse("--debug", "false");
  t.equal(values["debug"], "true");
  t.same(rest, ["false"]);
});

t.test("an empty value means unset", async (t) => {
  t.equal(parse("--advertise-client-url=").values["advertise-client-url"], "");
  t.equal(parse("--advertise-client-url", "").values["advertise-client-url"], "");
  t.equal(options("--advertise-client-url", "").advertiseClientUrl, "", "MemberList is forwarded");
  t.equal(options("--data-dir=").dataDir, "default.proxy", "an empty --data-dir falls back to the default");
  const o = options("--cert=", "--key=", "--cacert=", "--cert-file=", "--key-file=", "--tls-max-version=");
  t.same(o.upstreamTls, { insecureSkipVerify: false });
  t.equal(o.listenerTls.certFile, undefined);
  t.equal(o.listenerTls.maxVersion, undefined);
  t.equal(options("--dial-keepalive-time=").dialKeepAliveTimeMs, 0);
});

t.test("unknown flags and missing values are errors, never ignored", async (t) => {
  t.throws(() => parse("--no-such-flag"), { name: "FlagError", message: "unknown flag: --no-such-flag" });
  t.throws(() => parse("--no-such-flag=1"), { message: "unknown flag: --no-such-flag=1" });
  t.throws(() => parse("--endpoints"), { message: "flag needs an argument: --endpoints" });
  t.throws(() => parse("--max-send-bytes=lots"), { message: /invalid integer value "lots"/ });
  t.throws(() => parse("---endpoints=x:1"), FlagError, "three dashes is not a flag name");
});

t.test("-- and the first non-flag word end the flags", async (t) => {
  t.same(parse("--debug", "--", "--endpoints=x:1").rest, ["--endpoints=x:1"]);
  t.same(parse("extra", "--debug").rest, ["extra", "--debug"]);
  t.same(parse("-").rest, ["-"]);
});

t.test("'later' flags: refused with a value, accepted when empty or default", async (t) => {
  for (const args of [["--experimental-leasing-prefix=l"]]) {
    const flag = args[0]!.replace(/^--([^=]*).*$/, "$1");
    t.throws(() => options(...args), { name: "FlagError", message: `--${flag} is not supported yet by etcd-edge` }, args.join(" "));
  }
  for (const args of [["--experimental-leasing-prefix="], ["--grpc-keepalive-interval=2h"]]) {
    t.doesNotThrow(() => options(...args), args.join(" "));
  }
  t.doesNotThrow(() => options("--enable-pprof", "--grpc-keepalive-min-time=1s", "--permit-without-stream"), "'ignored' flags are accepted");
});

t.test("--resolver-prefix and --resolver-ttl: checked as etcd's checkArgs, with its words", async (t) => {
  const o = options("--resolver-prefix=___grpc_proxy_endpoint", "--resolver-ttl=60");
  t.same([o.resolverPrefix, o.resolverTtlSec, o.advertiseClientUrl], ["___grpc_proxy_endpoint", 60, "127.0.0.1:23790"]);
  t.same([options().resolverPrefix, options().resolverTtlSec], ["", 0], "off by default");
  t.same([options("--resolver-ttl=0").resolverTtlSec, options("--resolver-prefix=").resolverPrefix], [0, ""], "empty and zero are unset");
  t.throws(() => options("--resolver-prefix=p"), { name: "FlagError", message: "invalid resolver-ttl 0" });
  t.throws(() => options("--resolver-prefix=p", "--resolver-ttl=-3"), { message: "invalid resolver-ttl -3" });
  t.throws(() => options("--resolver-ttl=5"), { message: 'invalid resolver-prefix ""' });
  t.throws(() => options("--resolver-prefix=p", "--resolver-ttl=5", "--advertise-client-url="), { message: 'invalid advertise-client-url ""' });
});

t.test("--discovery-srv, --discovery-srv-name, --insecure-discovery, --discovery-srv-resolver", async (t) => {
  t.equal(options().discovery, undefined, "off by default");
  t.equal(options("--discovery-srv-name=x", "--insecure-discovery").discovery, undefined, "nothing without --discovery-srv");
  t.same(options("--discovery-srv=example.com").discovery, { domain: "example.com", serviceName: "", insecure: false, dnsServers: [] });
  t.same(options("--discovery-srv=example.com", "--discovery-srv-name=prod", "--insecure-discovery", "--discovery-srv-resolver=127.0.0.1:5353, ::1,[::1]:53").discovery,
    { domain: "example.com", serviceName: "prod", insecure: true, dnsServers: ["127.0.0.1:5353", "::1", "[::1]:53"] });
  for (const bad of ["dns.example:53", "127.0.0.1:99999", "1.2.3:53"]) {
    t.throws(() => options("--discovery-srv=example.com", `--discovery-srv-resolver=${bad}`), { message: /is not an IP address/ }, bad);
  }
  t.same(options("--discovery-srv=example.com").endpoints, [{ url: "http://127.0.0.1:2379", tls: false }], "--endpoints stays, as the fallback");
});

t.test("--endpoints-auto-sync-interval", async (t) => {
  t.equal(options().endpointsAutoSyncIntervalMs, 0, "off by default");
  t.equal(options("--endpoints-auto-sync-interval=30s").endpointsAutoSyncIntervalMs, 30_000);
  t.equal(options("--endpoints-auto-sync-interval=0").endpointsAutoSyncIntervalMs, 0);
  t.throws(() => parse("--endpoints-auto-sync-interval=30"), { message: /invalid duration "30"/ });
});

t.test("--namespace: the prefix as given; empty is none", async (t) => {
  t.equal(options("--namespace=ns/").namespace, "ns/");
  t.equal(options("--namespace", "app 1/").namespace, "app 1/");
  t.equal(options().namespace, "");
  t.equal(options("--namespace=").namespace, "", "an empty value is unset, as everywhere");
});

t.test("--listen-addr", async (t) => {
  t.same([options("--listen-addr=localhost:1234").listenHost, options("--listen-addr=localhost:1234").listenPort], ["127.0.0.1", 1234], "localhost binds the IPv4 loopback, as etcd's does");
  t.equal(options("--listen-addr=:1234").listenHost, "0.0.0.0", "no host: every interface");
  t.equal(options("--listen-addr=[::1]:1234").listenHost, "::1");
  t.equal(options("--listen-addr=0.0.0.0:0").listenPort, 0);
  t.throws(() => options("--listen-addr=1234"), { message: /--listen-addr: expected host:port, got "1234"/ });
  t.throws(() => options("--listen-addr=h:70000"), { message: /port out of range/ });
  t.same(hostPort("localhost:1", "--endpoints"), ["localhost", 1], "elsewhere localhost stays a name");
});

t.test("--endpoints: host:port, http:// and https://", async (t) => {
  t.same(parseEndpoints("127.0.0.1:2379", false), [{ url: "http://127.0.0.1:2379", tls: false }]);
  t.same(parseEndpoints("127.0.0.1:2379", true), [{ url: "https://127.0.0.1:2379", tls: true }], "scheme-less dials TLS when upstream TLS flags are given");
  t.same(parseEndpoints("http://a:1, https://b:2/ ,HTTPS://c:3,", false), [
    { url: "http://a:1", tls: false }, { url: "https://b:2", tls: true }, { url: "https://c:3", tls: true },
  ], "comma list, spaces and a trailing slash trimmed, scheme case-insensitive");
  t.same(parseEndpoints("[::1]:2379", false), [{ url: "http://[::1]:2379", tls: false }]);
  t.same(parseEndpoints("http://[::1]:2379", true), [{ url: "http://[::1]:2379", tls: false }], "an explicit http:// wins over TLS flags");
  t.same(options("--endpoints=e:1", "--insecure-skip-tls-verify").endpoints, [{ url: "https://e:1", tls: true }]);
  t.same(options("--endpoints=e:1", "--cacert=/ca.pem").endpoints, [{ url: "https://e:1", tls: true }]);
  t.throws(() => parseEndpoints("", false), { message: /at least one endpoint/ });
  t.throws(() => parseEndpoints(",", false), { message: /at least one endpoint/ });
  t.throws(() => parseEndpoints("unix://sock:0", false), { message: /unix sockets are not supported/ });
  t.throws(() => parseEndpoints("ftp://h:1", false), { message: /unknown scheme/ });
  t.throws(() => parseEndpoints("http://h", false), { message: /expected host:port/ });
});

t.test("durations, as Go's time.ParseDuration reads them", async (t) => {
  const cases: [string, number | undefined][] = [
    ["0", 0], ["0s", 0], ["5s", 5000], ["500ms", 500], ["1.5s", 1500], ["2h45m", 9_900_000], ["1h", 3_600_000],
    ["100us", 0.1], ["100µs", 0.1], ["1000000ns", 1], [".5s", 500], ["-1s", -1000], ["+2m", 120_000],
    ["", undefined], ["5", undefined], ["s", undefined], ["5x", undefined], ["5s ", undefined], ["1h 2m", undefined],
  ];
  for (const [text, ms] of cases) t.equal(parseDuration(text), ms, JSON.stringify(text));
  t.equal(options("--dial-keepalive-time=30s").dialKeepAliveTimeMs, 30_000);
  t.equal(options("--dial-keepalive-timeout", "1m").dialKeepAliveTimeoutMs, 60_000);
  t.throws(() => parse("--dial-keepalive-time=10"), { message: /invalid duration "10" for --dial-keepalive-time=10/ });
});

t.test("TLS flag combinations are checked before anything listens", async (t) => {
  t.throws(() => options("--cert=/c.pem"), { message: "--cert and --key must be given together" });
  t.throws(() => options("--cert-file=/c.pem"), { message: "--cert-file and --key-file must be given together" });
  // etcd's proxy exits on a trusted CA without listener certificates, and accepts a CRL without TLS (no effect:
  // etcd's e2e suite passes one to cleartext proxies).
  t.throws(() => options("--trusted-ca-file=/ca.pem"), { message: /--trusted-ca-file needs listener TLS/ });
  t.doesNotThrow(() => options("--auto-tls", "--trusted-ca-file=/ca.pem"));
  t.equal(options("--client-crl-file=/revoke.crl").listenerTls.clientCrlFile, "/revoke.crl", "--client-crl-file without TLS is accepted");
  t.equal(options("--tls-min-version=TLS1.3").listenerTls.minVersion, "TLSv1.3");
  t.throws(() => options("--tls-min-version=TLS1.1"), { message: /unknown TLS version "TLS1.1"/ });
  t.throws(() => options("--tls-min-version=TLS1.3", "--tls-max-version=TLS1.2"), { message: /greater than/ });
  t.throws(() => options("--max-send-bytes=0"), { message: /--max-send-bytes must be a positive integer/ });
  t.throws(() => options("--self-signed-cert-validity=-1"), { message: /must be a positive integer/ });
});

t.test("--metrics-addr: http:// or https:// host:port; https needs listener TLS, as etcd's proxy", async (t) => {
  t.equal(options().metricsListener, undefined, "off by default");
  t.same(options("--metrics-addr=http://127.0.0.1:2381").metricsListener, { scheme: "http", host: "127.0.0.1", port: 2381 });
  t.same(options("--metrics-addr=http://localhost:2381/").metricsListener, { scheme: "http", host: "127.0.0.1", port: 2381 }, "localhost binds the IPv4 loopback, a trailing / is fine");
  t.same(options("--metrics-addr=https://[::1]:2381", "--auto-tls").metricsListener, { scheme: "https", host: "::1", port: 2381 });
  t.same(options("--metrics-addr=HTTPS://0.0.0.0:2381", "--cert-file=c", "--key-file=k").metricsListener, { scheme: "https", host: "0.0.0.0", port: 2381 });
  t.throws(() => options("--metrics-addr=https://127.0.0.1:2381"), { name: "FlagError", message: /https needs listener TLS/ });
  t.throws(() => options("--metrics-addr=127.0.0.1:2381"), { name: "FlagError", message: /expected http:\/\/host:port or https:\/\/host:port/ });
  t.throws(() => options("--metrics-addr=unix://m.sock"), { name: "FlagError", message: /unsupported scheme/ });
  t.throws(() => options("--metrics-addr=http://127.0.0.1:2381/metrics"), { name: "FlagError" }, "a path is not an address");
  t.throws(() => options("--metrics-addr=http://127.0.0.1"), { name: "FlagError" }, "a port is needed");
});

t.test("--grpc-keepalive-interval/-timeout: grpc-go's defaults (2h, 20s), 0 turns the pings off", async (t) => {
  t.same([options().grpcKeepAliveIntervalMs, options().grpcKeepAliveTimeoutMs], [7_200_000, 20_000]);
  const o = options("--grpc-keepalive-interval=500ms", "--grpc-keepalive-timeout=1.5s");
  t.same([o.grpcKeepAliveIntervalMs, o.grpcKeepAliveTimeoutMs], [500, 1_500]);
  t.equal(options("--grpc-keepalive-interval=0").grpcKeepAliveIntervalMs, 0);
  t.throws(() => options("--grpc-keepalive-timeout=soon"), { name: "FlagError", message: /invalid duration/ });
});
