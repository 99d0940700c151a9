/**
 * upstream/watch/: hub → ranges → broadcast → watcher. Imports: upstream/client/, wire/, runtime/, observe/.
 *
 * Watch N→1: every client Watch stream of the proxy feeds from here, and etcd sees one upstream watch per
 * range and start (usually one) for each caller identity, on one upstream stream per identity. The levels,
 * as etcd's proxy splits them: watch-hub (identities) → watch-ranges (broadcasts by range, join/merge
 * rules, one upstream stream) → watch-broadcast (one upstream watch) → watcher (one client watcher); the
 * client stream is watch-stream.
 */
import { create } from "@bufbuild/protobuf";
import { WatchRequestSchema, type ResponseHeader, type WatchCreateRequest, type WatchRequest, type WatchResponse } from "../../../gen/etcdserverpb/rpc_pb.js";
import { PushQueue } from "../client/push-queue.js";
import { callerIdentity, callerMetadata, type CallerContext } from "../../wire/caller.js";
import type { WatchCache } from "../cache/watch-cache.js";
import type { Upstream } from "../client/upstream.js";
import { WatchRanges } from "./watch-ranges.js";
import { WatchStream } from "./watch-stream.js";

export interface WatchHubStats {
  /** Upstream watches (s-watchers) open or being opened at etcd. */
  upstreamWatchers: number;
  /** Client watchers (c-watchers) created and not ended. */
  clientWatchers: number;
  /** Client watchers riding a broadcast with others: sum over broadcasts of (receivers - 1). */
  coalescedWatchers: number;
  /** Responses waiting in client buffers. */
  bufferedResponses: number;
  /** Watchers parked because their client's buffer was full. */
  parkedWatchers: number;
  upstreamStreams: number;
}

export class WatchHub {
  /** By identity key. An entry goes when its last client stream and last broadcast are gone. */
  private readonly identities = new Map<string, WatchRanges>();
  /** etcd_grpc_proxy_events_coalescing_total: + (receivers - 1) for each upstream response with events. */
  eventsCoalesced = 0;
  /** The freshest header from any identity, for an answer before this identity heard from etcd. */
  lastHeader: ResponseHeader | undefined;

  constructor(private readonly up: Upstream, readonly cache?: WatchCache) {}

  /** One client Watch RPC: its responses, for as long as the client stays (a half-close does not end it). */
  watch(caller: CallerContext, requests: AsyncIterable<WatchRequest>): AsyncGenerator<WatchResponse> {
    return new WatchStream(this.rangesFor(caller), caller.signal).responses(requests);
  }

  /** The same, a batch of responses at a time (watch-stream.ts `batches`). */
  watchBatches(caller: CallerContext, requests: AsyncIterable<WatchRequest>): AsyncGenerator<WatchResponse[]> {
    return new WatchStream(this.rangesFor(caller), caller.signal).batches(requests);
  }

  /** One watch as a server stream (the Edge service's shape): the create, then everything etcd would send. */
  async *watchOne(caller: CallerContext, createRequest: WatchCreateRequest): AsyncGenerator<WatchResponse> {
    // One request, then the request side stays quiet: the watch lives until the caller goes away.
    const requests = new PushQueue<WatchRequest>(1);
    requests.push(create(WatchRequestSchema, { requestUnion: { case: "createRequest", value: createRequest } }));
    try {
      yield* this.watch(caller, requests);
    } finally {
      requests.close();
    }
  }

  stats(): WatchHubStats {
    const s: WatchHubStats = { upstreamWatchers: 0, clientWatchers: 0, coalescedWatchers: 0, bufferedResponses: 0, parkedWatchers: 0, upstreamStreams: 0 };
    for (const ranges of this.identities.values()) {
      if (ranges.upstream.isOpen) s.upstreamStreams++;
      for (const set of ranges.groups.values()) {
        for (const b of set) {
          s.upstreamWatchers++;
          s.coalescedWatchers += Math.max(0, b.receivers.size - 1);
        }
      }
      for (const stream of ranges.streams) {
        s.clientWatchers += stream.watcherCount;
        s.bufferedResponses += stream.bufferedResponses;
        s.parkedWatchers += stream.parked.size;
      }
    }
    return s;
  }

  close(): void {
    for (const ranges of this.identities.values()) ranges.upstream.close();
    this.identities.clear();
  }

  private rangesFor(caller: CallerContext): WatchRanges {
    const headers = callerMetadata(caller.requestHeader);
    const key = callerIdentity(headers);
    let ranges = this.identities.get(key);
    if (!ranges) {
      const created: WatchRanges = new WatchRanges(this, this.up, headers, () => {
        if (this.identities.get(key) === created) this.identities.delete(key);
        created.upstream.close();
      });
      ranges = created;
      this.identities.set(key, ranges);
    }
    return ranges;
  }
}
