/**
 * --endpoints-auto-sync-interval: every interval, etcd's member list replaces the endpoint list, as
 * clientv3's AutoSyncInterval does (client.go autoSync and Sync): the client URLs of every member that has
 * started (it has a name) and is not a learner. A member added to etcd is called without a restart of the
 * proxy, a member removed is dropped (Upstream.setEndpoints says what happens to its calls and streams).
 * A failed sync keeps the list as it is and is tried again at the next interval, as clientv3 does.
 */
import type { Member } from "../../../gen/etcdserverpb/rpc_pb.js";
import type { Logger } from "../../observe/log.js";
import type { Endpoint, Upstream } from "./upstream.js";

/** clientv3's Sync budget: one MemberList call of at most 5 s per interval. */
const SYNC_TIMEOUT_MS = 5_000;

export interface EndpointSyncOptions {
  intervalMs: number;
  /** etcd's members; by default a MemberList call through the upstream itself. */
  members?: () => Promise<readonly Member[]>;
  log?: Logger;
}

export class EndpointSync {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;
  /** Syncs that changed the list (for tests and logs). */
  changes = 0;
  private readonly members: () => Promise<readonly Member[]>;

  constructor(private readonly up: Upstream, private readonly o: EndpointSyncOptions) {
    this.members = o.members ?? (async () => {
      const res = await up.unary(undefined, (c, opt) => c.cluster.memberList({}, { ...opt, timeoutMs: SYNC_TIMEOUT_MS }), { readOnly: true });
      return res.members;
    });
  }

  start(): void {
    this.schedule();
  }

  close(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** One sync: the endpoints now in use, or undefined when etcd did not answer or named no usable URL. */
  async syncOnce(): Promise<readonly string[] | undefined> {
    let members: readonly Member[];
    try {
      members = await this.members();
    } catch (err) {
      this.o.log?.debug({ err: String(err) }, "auto sync of endpoints failed");
      return undefined;
    }
    const endpoints = endpointsOfMembers(members);
    // No started voting member with a usable URL (a cluster mid-change): keep what works now.
    if (endpoints.length === 0 || this.stopped) return undefined;
    const { added, removed } = this.up.setEndpoints(endpoints);
    if (added.length > 0 || removed.length > 0) {
      this.changes++;
      this.o.log?.info({ added, removed, endpoints: this.up.endpoints.map((e) => e.url) }, "endpoints synced from etcd's member list");
    }
    return this.up.endpoints.map((e) => e.url);
  }

  /** The next sync `intervalMs` after the last one ended (clientv3: time.After after each Sync). */
  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.syncOnce().finally(() => this.schedule()), this.o.intervalMs);
    this.timer.unref?.();
  }
}

/** clientv3's Sync: client URLs of members with a name (started) that are not learners, in member order. */
export function endpointsOfMembers(members: readonly Member[]): Endpoint[] {
  const out: Endpoint[] = [];
  for (const m of members) {
    if (m.name === "" || m.isLearner) continue;
    for (const url of m.clientURLs) {
      const ep = endpointOfUrl(url);
      if (ep && !out.some((e) => e.url === ep.url)) out.push(ep);
    }
  }
  return out;
}

/**
 * A client URL as etcd advertises it ("http://10.0.0.1:2379", "https://etcd-0.example:2379") as the
 * transport dials it; undefined for what it cannot dial (unix sockets, other schemes, no host).
 */
export function endpointOfUrl(text: string): Endpoint | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  if ((url.protocol !== "http:" && url.protocol !== "https:") || url.hostname === "") return undefined;
  const tls = url.protocol === "https:";
  const port = url.port || (tls ? "443" : "80");
  return { url: `${url.protocol}//${url.hostname}:${port}`, tls };
}
