/**
 * `etcd-edge start [flags]`: read flags, build the proxy, listen. The only place that exits the process.
 */
import { FlagError, parseFlags, usage } from "./config/flags.js";
import { buildOptions } from "./config/options.js";
import { startProxy } from "./proxy.js";
import { runtime } from "./runtime/runtime.js";

const VERSION = "0.1.0";

/**
 * How long a shutdown (SIGTERM, SIGINT) may take before the process exits 0: streams end at once with
 * Unavailable, unary calls in flight get this long to finish. 5 s stays inside the time supervisors wait
 * before SIGKILL (docker stop: 10 s, Kubernetes: 30 s, systemd: 90 s) and is far beyond an ordinary etcd
 * call (milliseconds); a call that needs longer (a Lock waiting for its holder, a read waiting out a leader
 * election) is cut and fails Unavailable, which clients retry on another endpoint.
 */
const SHUTDOWN_GRACE_MS = 5_000;
/** Of the grace period, what closing the connections and the upstream sessions may take after the drain. */
const CLOSE_RESERVE_MS = 500;

async function main(argv: string[]): Promise<void> {
  const [command, ...args] = argv;
  if (command === undefined || command === "help" || command === "--help" || command === "-h") {
    runtime.stdout(`etcd-edge ${VERSION}: an L7 proxy for etcd v3\n\nUsage: etcd-edge start [flags]\n       etcd-edge version\n\n${usage()}`);
    return;
  }
  if (command === "version" || command === "--version") {
    runtime.stdout(`etcd-edge ${VERSION} (${runtime.name})`);
    return;
  }
  if (command !== "start") {
    runtime.stderr(`etcd-edge: unknown command "${command}" (try: etcd-edge start --help)`);
    runtime.exit(2);
  }
  if (args.includes("--help") || args.includes("-h") || args.includes("-help")) {
    runtime.stdout(usage());
    return;
  }
  let options;
  try {
    const { values, given, rest } = parseFlags(args);
    if (rest.length > 0) throw new FlagError(`unexpected argument: ${rest[0]}`);
    options = buildOptions(values, given);
  } catch (err) {
    if (err instanceof FlagError) {
      runtime.stderr(`etcd-edge: ${err.message}`);
      runtime.exit(2);
    }
    throw err;
  }
  const proxy = await startProxy(options).catch((err: unknown) => {
    runtime.stderr(`etcd-edge: ${err instanceof Error ? err.message : String(err)}`);
    return runtime.exit(err instanceof FlagError ? 2 : 1);
  });
  const { host, port } = proxy.listener;
  const hostPort = (h: string, p: number) => `${h.includes(":") ? `[${h}]` : h}:${p}`;
  const metricsAt = proxy.metricsListener ? `, /metrics and /health also on ${options.metricsListener!.scheme}://${hostPort(proxy.metricsListener.host, proxy.metricsListener.port)}` : "";
  runtime.stderr(`etcd-edge ${VERSION} (${runtime.name}) listening on ${proxy.scheme}://${hostPort(host, port)}, etcd at ${options.endpoints.map((e) => e.url).join(",")}${metricsAt}`);
  runtime.onShutdown(async (signal) => {
    runtime.stderr(`etcd-edge: ${signal}, shutting down (streams end with Unavailable, unary calls get ${SHUTDOWN_GRACE_MS / 1000} s)`);
    // Whatever close() waits on, the process is gone within the grace period.
    setTimeout(() => runtime.exit(0), SHUTDOWN_GRACE_MS).unref?.();
    await proxy.close(SHUTDOWN_GRACE_MS - CLOSE_RESERVE_MS);
    runtime.exit(0);
  });
}

main(runtime.argv()).catch((err) => {
  runtime.stderr(`etcd-edge: fatal: ${err instanceof Error ? err.stack : String(err)}`);
  runtime.exit(1);
});
