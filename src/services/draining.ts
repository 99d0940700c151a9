/**
 * Ends every open stream of every service with Unavailable when the proxy shuts down (SIGTERM, Proxy.close),
 * whatever protocol carries it: the registry wraps each streaming implementation (registry.ts), so native
 * gRPC, gRPC-Web, Connect and the JSON gateway all see the same error and write it their way (grpc-status
 * 14 for gRPC). Unavailable is what clientv3 and grpc-js retry on another endpoint, and what etcd's own
 * clients see when a member goes away; a stream cut without a status would look like a network fault.
 * Unary calls are not touched: they finish (the listener waits for them, listener/drain.ts).
 */
import { Code, ConnectError } from "@connectrpc/connect";

export class Draining {
  private draining = false;
  /** Stop functions of the streams open now; each removes itself when its stream ends. */
  private readonly open = new Set<() => void>();

  get isDraining(): boolean {
    return this.draining;
  }

  /** Every open stream fails with Unavailable at its next step, and so does any stream opened later. */
  begin(): void {
    if (this.draining) return;
    this.draining = true;
    for (const stop of [...this.open]) stop();
  }

  /**
   * `source` until the proxy drains, then Unavailable: a pending step is failed at once (not after the
   * next message, which may never come), and the source is told to return so that it lets go of its
   * upstream share. No timer and no promise per stream beyond the step in progress.
   */
  stream<T>(source: AsyncIterable<T>): AsyncIterable<T> {
    return {
      [Symbol.asyncIterator]: (): AsyncIterator<T> => {
        const it = source[Symbol.asyncIterator]();
        let failPending: ((err: ConnectError) => void) | undefined;
        let stopped = false;
        const stop = () => {
          stopped = true;
          this.open.delete(stop);
          failPending?.(shuttingDown());
          void it.return?.()?.catch(() => {});
        };
        const finish = () => this.open.delete(stop);
        this.open.add(stop);
        return {
          next: () => {
            if (stopped || this.draining) {
              if (!stopped) stop();
              return Promise.reject(shuttingDown());
            }
            return new Promise<IteratorResult<T>>((resolve, reject) => {
              failPending = reject;
              it.next().then((r) => {
                failPending = undefined;
                if (r.done) finish();
                resolve(r);
              }, (err: unknown) => {
                failPending = undefined;
                finish();
                reject(err);
              });
            });
          },
          return: (value?: unknown) => {
            finish();
            return it.return ? it.return(value) : Promise.resolve({ done: true, value: value as T });
          },
          throw: (err?: unknown) => {
            finish();
            return it.throw ? it.throw(err) : Promise.reject(err);
          },
        };
      },
    };
  }
}

export function shuttingDown(): ConnectError {
  return new ConnectError("etcd-edge is shutting down", Code.Unavailable);
}
