/**
 * An async iterable fed by `push`: the request side of an upstream stream the proxy writes to itself
 * (the shared keep-alive stream, the cache's invalidation watch). `close` half-closes the stream once the
 * queued messages are read.
 */
export class PushQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private wake: (() => void) | undefined;
  private closed = false;

  /**
   * @param max Messages queued and not yet taken by the transport. Full → `push` returns false and the
   *   caller decides (every user here bounds what it pushes well below this).
   */
  constructor(private readonly max: number) {}

  get isClosed(): boolean {
    return this.closed;
  }

  /** False when closed or full: the message was not queued. */
  push(item: T): boolean {
    if (this.closed || this.items.length >= this.max) return false;
    this.items.push(item);
    this.wake?.();
    return true;
  }

  close(): void {
    this.closed = true;
    this.wake?.();
  }

  /**
   * A hand-written iterator, not an async generator: a generator parked on an empty queue cannot be
   * returned until it wakes, so a transport that aborts and awaits `return()` would hang. `throw` is
   * there because connect requires it of request iterables: it ends the queue and rethrows, as a
   * generator that does not catch would.
   */
  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: async (): Promise<IteratorResult<T>> => {
        for (;;) {
          if (this.items.length > 0) return { done: false, value: this.items.shift()! };
          if (this.closed) return { done: true, value: undefined };
          await new Promise<void>((resolve) => { this.wake = resolve; });
          this.wake = undefined;
        }
      },
      return: async (): Promise<IteratorResult<T>> => {
        this.close();
        this.items.length = 0;
        return { done: true, value: undefined };
      },
      throw: async (err?: unknown): Promise<IteratorResult<T>> => {
        this.close();
        this.items.length = 0;
        throw err;
      },
    };
  }
}
