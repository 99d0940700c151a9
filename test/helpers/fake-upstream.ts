/**
 * A stand-in for Upstream in unit tests of the hubs' logic: each upstream stream the code opens is handed
 * to the test, which reads what was sent and scripts etcd's responses (or a break). Not used against etcd.
 */
import type { Upstream } from "../../src/upstream/client/upstream.js";

export class ScriptedStream<Req, Res> {
  readonly sent: Req[] = [];
  private readonly queue: ({ res: Res } | { err: unknown } | { end: true })[] = [];
  private wake: (() => void) | undefined;
  ended = false;
  requestsClosed = false;

  constructor(requests: AsyncIterable<Req>, readonly signal: AbortSignal) {
    void (async () => {
      for await (const r of requests) { this.sent.push(r); this.onSent?.(); }
      this.requestsClosed = true;
      this.onSent?.();
    })();
    signal.addEventListener("abort", () => this.fail(new Error("aborted")), { once: true });
  }

  onSent: (() => void) | undefined;

  respond(res: Res): void { this.queue.push({ res }); this.wake?.(); }
  fail(err: unknown): void { this.queue.push({ err }); this.wake?.(); }
  end(): void { this.queue.push({ end: true }); this.wake?.(); }

  async *responses(): AsyncGenerator<Res> {
    try {
      for (;;) {
        const next = this.queue.shift();
        if (!next) { await new Promise<void>((r) => { this.wake = r; }); continue; }
        if ("res" in next) yield next.res;
        else if ("err" in next) throw next.err;
        else return;
      }
    } finally {
      this.ended = true;
    }
  }

  /** Resolves once `n` requests have been sent on this stream (or the request side closed). */
  async untilSent(n: number): Promise<void> {
    while (this.sent.length < n && !this.requestsClosed) await new Promise<void>((r) => { this.onSent = r; });
  }
}

export interface Fake {
  up: Upstream;
  streams: ScriptedStream<unknown, unknown>[];
  unaryCalls: number;
  unary: (() => Promise<unknown>) | undefined;
  /** Resolves with the next stream opened (or the latest if one is already waiting unclaimed). */
  nextStream<Req, Res>(): Promise<ScriptedStream<Req, Res>>;
}

export function fakeUpstream(): Fake {
  const waiting: ((s: ScriptedStream<unknown, unknown>) => void)[] = [];
  let claimed = 0;
  const fake: Fake = {
    streams: [],
    unaryCalls: 0,
    unary: undefined,
    up: undefined as unknown as Upstream,
    nextStream<Req, Res>(): Promise<ScriptedStream<Req, Res>> {
      if (fake.streams.length > claimed) return Promise.resolve(fake.streams[claimed++] as unknown as ScriptedStream<Req, Res>);
      return new Promise<ScriptedStream<unknown, unknown>>((resolve) => waiting.push((s) => { claimed++; resolve(s); })) as unknown as Promise<ScriptedStream<Req, Res>>;
    },
  };
  const anyCall = (requests: AsyncIterable<unknown>, o: { signal?: AbortSignal }) => {
    const s = new ScriptedStream<unknown, unknown>(requests, o.signal ?? new AbortController().signal);
    fake.streams.push(s);
    const w = waiting.shift();
    if (w) w(s);
    return s.responses();
  };
  const clients = { watch: { watch: anyCall }, lease: { leaseKeepAlive: anyCall } };
  fake.up = {
    stream: (caller: { signal: AbortSignal } | undefined, call: (c: unknown, o: unknown) => AsyncIterable<unknown>) => call(clients, { signal: caller?.signal }),
    unary: () => { fake.unaryCalls++; return fake.unary ? fake.unary() : Promise.resolve({}); },
  } as unknown as Upstream;
  return fake;
}

export const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));
