/**
 * test/integration/watch-differential.test.ts again, with its keys inside a prefix of the watch cache
 * (--watch-cache-prefix=run): watchers from random recent revisions, with random ranges and filters,
 * around compactions and into the future, through the cache and directly on etcd, must be told the same.
 * At the end, the cache must have fed watchers itself (not only handed them to etcd).
 */
process.env["WATCH_DIFF_CACHE"] = "1";
await import("../integration/watch-differential.test.js");
