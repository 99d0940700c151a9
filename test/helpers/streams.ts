/** Tools for driving streaming RPCs from a test: a request stream fed by hand, a bounded wait for responses. */

/**
 * An async iterable request stream the test pushes into; `end()` half-closes it. Unbounded, which is fine
 * for a test that pushes a handful of messages.
 */
export class AsyncQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private waiting: ((r: IteratorResult<T>) => void) | undefined;
  private ended = false;

  push(item: T): void {
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = undefined;
      w({ value: item, done: false });
    } else {
      this.items.push(item);
    }
  }

  end(): void {
    this.ended = true;
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = undefined;
      w({ value: undefined, done: true });
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        if (this.items.length > 0) return Promise.resolve({ value: this.items.shift()!, done: false });
        if (this.ended) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => { this.waiting = resolve; });
      },
      return: () => {
        this.end();
        return Promise.resolve({ value: undefined, done: true });
      },
      // connect-es aborts a request stream by calling throw() on it.
      throw: (err?: unknown) => {
        this.end();
        return Promise.reject(err instanceof Error ? err : new Error(String(err)));
      },
    };
  }
}

/**
 * The next message of a response stream, or a failure naming what was awaited after `ms`, so that a
 * missing message fails the test with a reason instead of hanging it until tap's timeout.
 */
export async function nextWithin<T>(it: AsyncIterator<T>, what: string, ms = 10_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  try {
    const r = await Promise.race([it.next(), timeout]);
    if (r.done) throw new Error(`the stream ended before ${what}`);
    return r.value;
  } finally {
    clearTimeout(timer);
  }
}
