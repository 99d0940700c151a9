/**
 * One unary call into a service implementation, for every caller that skips connect-es's generic
 * machinery (the fast paths of listener/fast and the JSON gateway): the caller's metadata, its deadline
 * (DeadlineExceeded when it passes, whether or not etcd ever answers), its cancellation (the client went
 * away), and the request size bound (--max-send-bytes). The outcome is reported once, to `done`.
 *
 * Callback-shaped, not a promise race: this is the hottest path of the proxy, and a cache hit must cost no
 * timer, no AbortController and no extra promise (the signal is made on first use).
 */
import { toBinary, type Message } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import type { CallerContext } from "../wire/caller.js";
import type { Peer } from "../wire/flow.js";
import { canceled, deadlineExceeded, internal, messageTooLarge } from "../wire/errors.js";
import { clampTimer } from "../wire/timeout.js";
import type { UnaryMethod } from "./registry.js";
import type { Charger } from "./seats.js";

export type Outcome = (err: ConnectError | undefined, output: Message | undefined) => void;

export class UnaryCall implements CallerContext {
  /** --fairness (seats.ts): charges each call to its flow before it runs; unset (fairness off): nothing to do. */
  static charge: Charger | undefined;
  /** The connection the call came on, set by the listener or gateway when fairness is on (the flow's certificate or address). */
  declare peer: Peer | undefined;
  private abort: AbortController | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly deadline: number | undefined;
  private finished = false;

  /** `timeoutMs`: the caller's deadline from now, undefined for none. */
  constructor(readonly requestHeader: Headers, timeoutMs: number | undefined, private readonly done: Outcome) {
    if (timeoutMs === undefined) return;
    const ms = clampTimer(timeoutMs);
    this.deadline = Date.now() + ms;
    this.timer = setTimeout(() => this.fail(deadlineExceeded()), ms);
  }

  get signal(): AbortSignal {
    return (this.abort ??= new AbortController()).signal;
  }

  timeoutMs(): number | undefined {
    return this.deadline === undefined ? undefined : this.deadline - Date.now();
  }

  get isFinished(): boolean {
    return this.finished;
  }

  /**
   * Calls the implementation. `size`: the request's encoded size when the caller counted it while reading
   * (the fast paths); otherwise it is measured here against `maxSendBytes`.
   */
  run(m: UnaryMethod, input: Message, maxSendBytes: number, size?: number): void {
    if (this.finished) return;
    const bytes = size ?? toBinary(m.input, input).byteLength;
    if (bytes > maxSendBytes) return this.fail(messageTooLarge(bytes, maxSendBytes));
    let result: Promise<Message>;
    try {
      UnaryCall.charge?.(this.requestHeader, this.peer, m.labels, input);
      result = m.impl(input, this);
    } catch (err) {
      // An implementation that throws synchronously (a request it cannot handle) fails this call only.
      return this.fail(err instanceof ConnectError ? err : internal(`${m.labels.grpc_method} failed`, err));
    }
    result.then((out) => this.succeed(out), (err: unknown) => this.fail(ConnectError.from(err)));
  }

  /** The client went away: the call ends, its upstream work is aborted, and `done` hears Canceled. */
  cancel(): void {
    this.fail(canceled());
  }

  fail(err: ConnectError): void {
    if (this.finished) return;
    this.end();
    this.abort?.abort(err);
    this.report(err, undefined);
  }

  private succeed(out: Message): void {
    if (this.finished) return;
    this.end();
    this.report(undefined, out);
  }

  /** `done` writes the answer from a promise continuation: a throw there (a stream closed meanwhile) is dropped, never unhandled. */
  private report(err: ConnectError | undefined, out: Message | undefined): void {
    try {
      this.done(err, out);
    } catch {
      // the client is gone; nothing to answer
    }
  }

  private end(): void {
    this.finished = true;
    clearTimeout(this.timer);
  }
}

/** The same call as a promise, for callers that await (the JSON gateway); `signal` cancels it. */
export function invoke(m: UnaryMethod, input: Message, o: { requestHeader: Headers; timeoutMs: number | undefined; maxSendBytes: number; signal?: AbortSignal; peer?: Peer | undefined }): Promise<Message> {
  return new Promise((resolve, reject) => {
    const onAbort = () => call.cancel();
    const call = new UnaryCall(o.requestHeader, o.timeoutMs, (err, out) => {
      o.signal?.removeEventListener("abort", onAbort);
      if (err) reject(err);
      else resolve(out!);
    });
    if (o.signal?.aborted) return call.cancel();
    if (UnaryCall.charge) call.peer = o.peer;
    o.signal?.addEventListener("abort", onAbort, { once: true });
    call.run(m, input, o.maxSendBytes);
  });
}
