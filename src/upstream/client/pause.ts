/**
 * A wait that an AbortSignal cuts short: backoff between upstream reconnects and health re-checks must
 * not keep a closed proxy (or a gone client) waiting, nor leave a timer behind.
 */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = Number.isFinite(ms) ? setTimeout(done, ms) : undefined;
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
