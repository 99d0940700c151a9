/**
 * observe/: metrics, RPC metrics and the logger. Imports: no other src/ folder (a leaf).
 *
 * The proxy's Prometheus registry. Names follow go-grpc-prometheus (grpc_server_*), which etcd and its
 * proxy export, so existing dashboards work; a `protocol` label tells gRPC, gRPC-Web and Connect apart.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export class Metrics {
  readonly registry = new Registry();

  readonly started = new Counter({
    name: "grpc_server_started_total",
    help: "RPCs started on the proxy, by service, method, type and protocol.",
    labelNames: ["grpc_type", "grpc_service", "grpc_method", "protocol"] as const,
    registers: [this.registry],
  });

  readonly handled = new Counter({
    name: "grpc_server_handled_total",
    help: "RPCs completed on the proxy, by status code.",
    labelNames: ["grpc_type", "grpc_service", "grpc_method", "protocol", "grpc_code"] as const,
    registers: [this.registry],
  });

  readonly handlingSeconds = new Histogram({
    name: "grpc_server_handling_seconds",
    help: "Time from the start of an RPC to its end, unary and streaming.",
    labelNames: ["grpc_type", "grpc_service", "grpc_method", "protocol"] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60],
    registers: [this.registry],
  });

  readonly openStreams = new Gauge({
    name: "etcd_edge_open_streams",
    help: "Client streaming RPCs open on the proxy now.",
    labelNames: ["grpc_service", "grpc_method", "protocol"] as const,
    registers: [this.registry],
  });

  readonly httpRequests = new Counter({
    name: "etcd_edge_http_requests_total",
    help: "Plain HTTP requests (health, metrics, JSON gateway) by route and status.",
    labelNames: ["route", "code"] as const,
    registers: [this.registry],
  });

  readonly healthChecks = new Counter({
    name: "etcd_edge_health_checks_total",
    help: "Health checks answered, by result.",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  /** A gauge whose value is read when /metrics is scraped (no bookkeeping on the hot path). */
  gaugeFrom(name: string, help: string, read: () => number): void {
    new Gauge({ name, help, registers: [this.registry], collect() { this.set(read()); } });
  }

  /** A counter whose total is read when /metrics is scraped, from a number that only grows. */
  counterFrom(name: string, help: string, read: () => number): void {
    new Counter({ name, help, registers: [this.registry], collect() { this.reset(); this.inc(read()); } });
  }

  /** Like gaugeFrom, with one series per label value. */
  labelledGaugeFrom(name: string, help: string, label: string, read: () => Iterable<[string, number]>): void {
    new Gauge({
      name,
      help,
      labelNames: [label],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [value, n] of read()) this.set({ [label]: value }, n);
      },
    });
  }
}
