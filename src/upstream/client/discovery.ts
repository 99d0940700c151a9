/**
 * --discovery-srv: etcd's client endpoints from DNS SRV records, as etcd's proxy finds them (etcdmain/util.go
 * discoverEndpoints, pkg/srv GetClient): `_etcd-client-ssl._tcp.<domain>` gives https endpoints and
 * `_etcd-client._tcp.<domain>` http ones (with --discovery-srv-name: `_etcd-client-ssl-<name>._tcp...`).
 * Without --insecure-discovery only https endpoints that accept a connection within 5 s are kept
 * (transport.ValidateSecureEndpoints dials TCP, nothing more). Both lookups failing is fatal, as in etcd;
 * an empty result makes the caller fall back to --endpoints, as etcd does.
 */
import { Resolver } from "node:dns/promises";
import { connect } from "node:net";
import type { Endpoint } from "./upstream.js";

export interface SrvDiscovery {
  domain: string;
  serviceName: string;
  insecure: boolean;
  /** DNS servers ("ip" or "ip:port"); empty: the system's. */
  dnsServers: string[];
  /** etcd's ValidateSecureEndpoints dial timeout. */
  dialTimeoutMs?: number;
}

/** pkg/srv GetSRVService: "etcd-client" → "etcd-client-ssl" for https, then "-<name>" when given. */
export function srvService(service: string, serviceName: string, scheme: "http" | "https"): string {
  const s = scheme === "https" ? `${service}-ssl` : service;
  return serviceName ? `${s}-${serviceName}` : s;
}

/** The SRV names looked up, https first (the order of etcd's endpoint list). */
export function srvNames(o: Pick<SrvDiscovery, "domain" | "serviceName">): { https: string; http: string } {
  return {
    https: `_${srvService("etcd-client", o.serviceName, "https")}._tcp.${o.domain}`,
    http: `_${srvService("etcd-client", o.serviceName, "http")}._tcp.${o.domain}`,
  };
}

export async function discoverEndpoints(o: SrvDiscovery): Promise<Endpoint[]> {
  // A few tries of a few seconds: a start that hangs on an unanswered DNS server helps no one.
  const resolver = new Resolver({ timeout: 2_000, tries: 2 });
  if (o.dnsServers.length > 0) resolver.setServers(o.dnsServers);
  const names = srvNames(o);
  const lookup = async (name: string, tls: boolean): Promise<Endpoint[]> => {
    const records = await resolver.resolveSrv(name);
    // Go's LookupSRV orders by priority, then by weight (randomly within a priority); here heavier first.
    records.sort((a, b) => a.priority - b.priority || b.weight - a.weight);
    return records.map((r) => {
      const host = r.name.replace(/\.$/, "");
      return { url: `${tls ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${r.port}`, tls };
    });
  };
  const [secure, plain] = await Promise.allSettled([lookup(names.https, true), lookup(names.http, false)]);
  if (secure.status === "rejected" && plain.status === "rejected") {
    throw new Error(`dns lookup errors: ${reason(secure.reason)} and ${reason(plain.reason)}`);
  }
  const found = [...(secure.status === "fulfilled" ? secure.value : []), ...(plain.status === "fulfilled" ? plain.value : [])];
  if (o.insecure) return found;
  const reachable = await Promise.all(found.map((e) => e.tls && dials(e.url, o.dialTimeoutMs ?? 5_000)));
  return found.filter((_, i) => reachable[i]);
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Whether `url`'s host:port accepts a TCP connection within `timeoutMs`. */
function dials(url: string, timeoutMs: number): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: u.hostname.replace(/^\[|\]$/g, ""), port: Number(u.port) });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}
