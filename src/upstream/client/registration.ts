/**
 * --resolver-prefix / --resolver-ttl: this proxy registered in etcd as etcd's grpc-proxy registers itself
 * (proxy/grpcproxy/register.go through clientv3/naming/endpoints): the key `<prefix>/<advertise-client-url>`
 * holds the JSON clientv3's naming resolver reads, `{"Op":0,"Addr":"<url>","Metadata":"{\"name\":\"<host>\"}"}`
 * (Metadata is a JSON string inside the JSON), attached to a lease of --resolver-ttl seconds.
 *
 * The lease is kept alive every TTL/3 on a keep-alive stream of its own. When etcd says the lease is gone
 * (expired during a partition, revoked, etcd restored from an older state) or no answer came for a whole
 * TTL, a new lease is granted and the key written again; attempts are at most one a second, as etcd's.
 * A proxy that dies stops its keep-alives, so its key goes TTL seconds after the last one etcd saw; a proxy
 * that shuts down revokes the lease, so its key goes at once (etcd's proxy leaves it for the TTL).
 */
import { create } from "@bufbuild/protobuf";
import { LeaseKeepAliveRequestSchema, type LeaseKeepAliveRequest } from "../../../gen/etcdserverpb/rpc_pb.js";
import type { Logger } from "../../observe/log.js";
import type { CallerContext } from "../../wire/caller.js";
import { pause } from "./pause.js";
import { PushQueue } from "./push-queue.js";
import type { Upstream } from "./upstream.js";

/** etcd's registerRetryRate: at most one registration attempt a second. */
const RETRY_INTERVAL_MS = 1_000;
/** Budget of each grant, put and revoke: a stuck call must not hold the loop (or the shutdown) long. */
const CALL_TIMEOUT_MS = 5_000;
/** Backoff between keep-alive streams when one breaks while the lease may still be alive. */
const RESTREAM_MS = 500;
/** Keep-alives queued and not yet taken by the transport: one is enough, more are dropped (the next tick sends). */
const MAX_QUEUED_KEEPALIVES = 2;

export interface RegistrationOptions {
  prefix: string;
  /** --advertise-client-url, verbatim: the key's suffix and the Addr clients dial. */
  addr: string;
  ttlSec: number;
  hostname: string;
  log?: Logger;
}

/** The value etcd's endpoints manager writes (internal.Update with Op Add). */
export function registrationValue(addr: string, hostname: string): string {
  return JSON.stringify({ Op: 0, Addr: addr, Metadata: JSON.stringify({ name: hostname }) });
}

export class Registration {
  readonly key: string;
  /** The lease the key is attached to now; revoked on close. */
  lease: bigint | undefined;
  /** Times the key was written (the first registration and every re-registration). */
  registrations = 0;
  private readonly stopped = new AbortController();
  private loopDone: Promise<void> = Promise.resolve();

  constructor(private readonly up: Upstream, private readonly o: RegistrationOptions) {
    this.key = `${o.prefix}/${o.addr}`;
  }

  start(): void {
    this.loopDone = this.loop();
  }

  /** Stops the keep-alives and revokes the lease, which deletes the key: clients stop being sent here. */
  async close(): Promise<void> {
    this.stopped.abort();
    await this.loopDone;
    const id = this.lease;
    this.lease = undefined;
    if (id === undefined) return;
    try {
      await this.up.unary(undefined, (c, opt) => c.lease.leaseRevoke({ ID: id }, { ...opt, timeoutMs: 2_000 }), { readOnly: false });
    } catch (err) {
      this.o.log?.warn({ err: String(err), key: this.key }, "could not revoke the registration lease; the key expires with it");
    }
  }

  private caller(): CallerContext {
    return { requestHeader: new Headers(), signal: this.stopped.signal, timeoutMs: () => CALL_TIMEOUT_MS };
  }

  private async loop(): Promise<void> {
    while (!this.stopped.signal.aborted) {
      const started = Date.now();
      try {
        const ttl = await this.register();
        await this.keepAlive(ttl);
        if (!this.stopped.signal.aborted) this.o.log?.warn({ key: this.key }, "registration lease lost; registering again");
      } catch (err) {
        if (!this.stopped.signal.aborted) this.o.log?.warn({ err: String(err), key: this.key }, "registration failed; trying again");
      }
      await pause(Math.max(0, RETRY_INTERVAL_MS - (Date.now() - started)), this.stopped.signal);
    }
  }

  /** A new lease and the key on it. Returns the TTL etcd granted (it may raise a TTL below its minimum). */
  private async register(): Promise<number> {
    const grant = await this.up.unary(this.caller(), (c, opt) => c.lease.leaseGrant({ TTL: BigInt(this.o.ttlSec) }, opt), { readOnly: false });
    this.lease = grant.ID;
    const value = new TextEncoder().encode(registrationValue(this.o.addr, this.o.hostname));
    await this.up.unary(this.caller(), (c, opt) => c.kv.put({ key: new TextEncoder().encode(this.key), value, lease: grant.ID }, opt), { readOnly: false });
    this.registrations++;
    this.o.log?.info({ key: this.key, lease: grant.ID.toString(16), ttl: Number(grant.TTL) }, "registered");
    return Number(grant.TTL) > 0 ? Number(grant.TTL) : this.o.ttlSec;
  }

  /**
   * Keeps the current lease alive until etcd says it is gone (TTL 0 in a keep-alive answer) or a whole TTL
   * passed without an answer, then returns so the loop registers again. Returns at once when stopped.
   */
  private async keepAlive(ttlSec: number): Promise<void> {
    const id = this.lease!;
    const everyMs = Math.max(500, (ttlSec * 1000) / 3);
    let answered = Date.now();
    while (!this.stopped.signal.aborted) {
      const feed = new PushQueue<LeaseKeepAliveRequest>(MAX_QUEUED_KEEPALIVES);
      const ask = () => void feed.push(create(LeaseKeepAliveRequestSchema, { ID: id }));
      ask();
      const ticker = setInterval(ask, everyMs);
      const caller: CallerContext = { requestHeader: new Headers(), signal: this.stopped.signal, timeoutMs: () => undefined };
      try {
        for await (const res of this.up.stream(caller, (c, opt) => c.lease.leaseKeepAlive(feed, opt))) {
          if (res.TTL <= 0n) return;
          answered = Date.now();
        }
      } catch {
        // etcd restarting or unreachable: a new stream below, unless the lease has surely expired by now
      } finally {
        clearInterval(ticker);
        feed.close();
      }
      if (Date.now() - answered >= ttlSec * 1000) return;
      await pause(RESTREAM_MS, this.stopped.signal);
    }
  }
}
