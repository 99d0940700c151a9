/**
 * Watch fan-out without encoding the same events once per watcher. One upstream response becomes a
 * response for every client watcher on it; they differ only in watch_id (and in which events a watcher's
 * filters keep). The profile of 10,000 watchers on one key had protobuf encoding and the garbage it
 * leaves at a third of the proxy's CPU. Here:
 *
 * - `sharedEvents`: watchers with the same filters get the same events array for one upstream response
 *   (watcher.ts), built once;
 * - `watchResponseBinary`: the header and the events array are encoded once each (kept beside the objects
 *   in WeakMaps) and a watcher's response is those bytes around its own watch_id. The bytes are exactly
 *   what toBinary writes (fields in number order); test/unit/watch-encoding.test.ts checks that against
 *   toBinary for random responses. Anything else a response may carry (created, canceled, compaction,
 *   unknown fields) takes toBinary.
 *
 * Shared arrays and headers are never changed after they are handed out (the watch path only reads them).
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { EventSchema, type Event } from "../../gen/mvccpb/kv_pb.js";
import { ResponseHeaderSchema, WatchResponseSchema, type ResponseHeader, type WatchResponse } from "../../gen/etcdserverpb/rpc_pb.js";

const HEADER = 1;
const WATCH_ID = 2;
const FRAGMENT = 7;
const EVENTS = 11;

const headerBytes = new WeakMap<ResponseHeader, Uint8Array>();
const eventsBytes = new WeakMap<readonly Event[], Uint8Array>();
/** Upstream events array → filter variant ("put,delete,prevKv" flags) → the array for that variant. */
const variants = new WeakMap<readonly Event[], Map<number, Event[]>>();

export interface EventFilter {
  noPut: boolean;
  noDelete: boolean;
  prevKv: boolean;
}

/**
 * The events of `upstream` a watcher with `filter` gets, the same array for every watcher with the same
 * filter. `keep` says which event types pass (the caller's filter, as a predicate on one event).
 */
export function sharedEvents(upstream: readonly Event[], filter: EventFilter, keep: (e: Event) => boolean): Event[] {
  const key = (filter.noPut ? 1 : 0) | (filter.noDelete ? 2 : 0) | (filter.prevKv ? 4 : 0);
  let byVariant = variants.get(upstream);
  if (!byVariant) variants.set(upstream, (byVariant = new Map()));
  let events = byVariant.get(key);
  if (!events) {
    events = upstream.filter(keep).map((e) => eventAsAsked(e, filter.prevKv));
    byVariant.set(key, events);
  }
  return events;
}

/** Without prev_kv asked, an event is sent without it (the upstream watch always asks for it). */
export function eventAsAsked(e: Event, prevKv: boolean): Event {
  return prevKv || !e.prevKv ? e : create(EventSchema, { type: e.type, kv: e.kv });
}

/** toBinary(WatchResponseSchema, r), with the header and the events encoded once for all watchers. */
export function watchResponseBinary(r: WatchResponse): Uint8Array {
  // A watch_id below 0 or past 2^53 is never one the hub hands out; toBinary handles whatever it is.
  if (r.created || r.canceled || r.compactRevision !== 0n || r.cancelReason !== "" || r.events.length === 0
    || r.watchId < 0n || r.watchId > MAX_SAFE || hasUnknown(r)) {
    return toBinary(WatchResponseSchema, r);
  }
  const header = r.header ? encodedHeader(r.header) : undefined;
  const events = encodedEvents(r.events);
  const watchId = Number(r.watchId);
  const size = (header ? 1 + varintLength(header.length) + header.length : 0)
    + (watchId !== 0 ? 1 + varintLength(watchId) : 0)
    + (r.fragment ? 2 : 0)
    + events.length;
  // Written by hand into one buffer of the exact size: a BinaryWriter per response was most of what was
  // left of the encoding cost.
  const out = new Uint8Array(size);
  let at = 0;
  if (header) {
    out[at++] = (HEADER << 3) | WireType.LengthDelimited;
    at = writeVarint(out, at, header.length);
    out.set(header, at);
    at += header.length;
  }
  if (watchId !== 0) {
    out[at++] = (WATCH_ID << 3) | WireType.Varint;
    at = writeVarint(out, at, watchId);
  }
  if (r.fragment) {
    out[at++] = (FRAGMENT << 3) | WireType.Varint;
    out[at++] = 1;
  }
  out.set(events, at);
  return out;
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

function writeVarint(out: Uint8Array, at: number, n: number): number {
  while (n >= 0x80) {
    out[at++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  out[at++] = n;
  return at;
}

function encodedHeader(h: ResponseHeader): Uint8Array {
  let bytes = headerBytes.get(h);
  if (!bytes) headerBytes.set(h, (bytes = toBinary(ResponseHeaderSchema, h)));
  return bytes;
}

function encodedEvents(events: readonly Event[]): Uint8Array {
  let bytes = eventsBytes.get(events);
  if (!bytes) {
    const w = new BinaryWriter();
    for (const e of events) w.tag(EVENTS, WireType.LengthDelimited).bytes(toBinary(EventSchema, e));
    eventsBytes.set(events, (bytes = w.finish()));
  }
  return bytes;
}

function hasUnknown(m: object): boolean {
  const unknown = (m as { $unknown?: unknown[] }).$unknown;
  return unknown !== undefined && unknown.length > 0;
}
