/**
 * Answers the cache gave, kept for the readers that ask the same thing at the same revision: a list
 * read by many clients between two writes is built and encoded once (the reply is shared: wire/
 * shared-replies.ts), not once per reader. The profile of 2,000-key lists had building and encoding
 * the answer as nearly all of the proxy's CPU.
 *
 * Keyed by the request's bytes and etcd's header (cluster, member, revision, raft term): two readers get
 * the same object only if etcd would have given both the same bytes. Emptied whenever the prefix
 * changes, and bounded: MAX_BYTES of keys and values, MAX_ENTRIES answers; past either it starts over
 * (entries are only a shortcut, dropping them is always correct).
 */
import { toBinary } from "@bufbuild/protobuf";
import { RangeRequestSchema, type RangeRequest, type RangeResponse, type ResponseHeader } from "../../../gen/etcdserverpb/rpc_pb.js";
import { shareReply } from "../../wire/shared-replies.js";
import { keyString } from "../client/key-ranges.js";

/** 32 MiB: a few hundred lists of thousands of keys; the keys and values themselves are the store's. */
const MAX_BYTES = 32 * 1024 * 1024;
const MAX_ENTRIES = 4096;

export class AnswerMemo {
  private readonly answers = new Map<string, RangeResponse>();
  private bytes = 0;
  hits = 0;

  keyOf(req: RangeRequest, h: ResponseHeader | undefined): string {
    return `${h?.clusterId}/${h?.memberId}/${h?.revision}/${h?.raftTerm}/${keyString(toBinary(RangeRequestSchema, req))}`;
  }

  get(key: string): RangeResponse | undefined {
    const hit = this.answers.get(key);
    if (hit) this.hits++;
    return hit;
  }

  set(key: string, answer: RangeResponse): void {
    let size = 64;
    for (const kv of answer.kvs) size += 64 + kv.key.length + kv.value.length;
    if (this.answers.size >= MAX_ENTRIES || this.bytes + size > MAX_BYTES) this.clear();
    if (size > MAX_BYTES) return;
    shareReply(answer);
    this.answers.set(key, answer);
    this.bytes += size;
  }

  clear(): void {
    this.answers.clear();
    this.bytes = 0;
  }
}
