/**
 * etcdctl 3.4 dials its per-endpoint calls (`endpoint status`, `endpoint hashkv`, `defrag`, `move-leader`)
 * with the whole endpoint URL as `:authority` ("http://127.0.0.1:2379"). nghttp2 (Node's, Deno's and Bun's
 * http2) resets such a stream with PROTOCOL_ERROR before any handler runs (`/` is not allowed in an
 * authority); etcd accepts it. So the `:authority` of a connection's first header block is rewritten in
 * place, every frame keeping its length:
 * - "scheme://host:port..." becomes "host:port" (Hono's adapter answers 400 to a host it cannot parse);
 *   the HEADERS frame's padding takes up the bytes saved (RFC 9113 §6.2).
 * - where that cannot be done (no scheme, the value reaching into a CONTINUATION, padding over 255),
 *   every `/` becomes `.`: both are 6-bit Huffman codes (RFC 7541 Appendix B), so nothing moves. gRPC
 *   then works; a route behind Hono still gets 400.
 * A literal with incremental indexing enters the dynamic table shorter than the client thinks: the
 * decoder then evicts no earlier than the encoder, so every index the client sends names the same entry.
 *
 * Pure, and never throws: whatever it cannot parse is left as sent, for nghttp2 to answer as it would.
 */
import { createRequire } from "node:module";

/** The 24-byte HTTP/2 client connection preface (RFC 9113 §3.4). */
export const CLIENT_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

const FRAME_HEADER = 9;
const enum Frame { HEADERS = 0x1, PRIORITY = 0x2, SETTINGS = 0x4, WINDOW_UPDATE = 0x8, CONTINUATION = 0x9 }
const enum Flag { ACK = 0x1, END_HEADERS = 0x4, PADDED = 0x8, PRIORITY = 0x20 }
const PRIORITY_FIELDS = 5;
const MAX_PADDING = 255;

/** HPACK's static table index of `:authority` (RFC 7541 Appendix A). */
const AUTHORITY_INDEX = 1;
const AUTHORITY = Buffer.from(":authority");
const SLASH = 0x2f;
const DOT = 0x2e;
/** "scheme://" and the authority after it, up to a path, query or fragment (RFC 3986 §3). */
const URL_AUTHORITY = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]+)/;

/** The parts of hpack.js used here: its bit-level string decoder and encoder (it ships no types). */
interface HpackJs {
  decoder: { create(): { push(b: Buffer): void; decodeStr(): number[] | Buffer } };
  encoder: { create(): { encodeStr(value: number[], huffman: boolean): void; render(): Buffer[] } };
}
const hpack = createRequire(import.meta.url)("hpack.js") as HpackJs;

export type FirstFramesState =
  /** No deciding frame is complete yet. */
  | "more"
  /** The first header block (HEADERS and its CONTINUATIONs) is complete, and was patched if it needed it. */
  | "headers"
  /** Something else came first (PING, DATA, GOAWAY, a malformed HEADERS, no preface): nothing to patch. */
  | "other";

/**
 * Reads the start of one client connection as its bytes arrive. Call `scan` with all bytes received so
 * far (preface included), each time more arrive; frames already looked at are not looked at again, so a
 * connection costs one pass over its bytes however they are split.
 */
export class ClientStart {
  state: FirstFramesState = "more";
  /** A HEADERS frame has begun: the client is not waiting for the server's SETTINGS. */
  headersBegun = false;
  /** Where the first SETTINGS frame with ACK starts (a well-formed one: 9 bytes). */
  settingsAck: number | undefined;
  /** The `:authority` value was rewritten. */
  patched = false;
  private next = CLIENT_PREFACE.length;

  scan(bytes: Uint8Array): void {
    try {
      this.walk(bytes);
    } catch {
      // Not expected (every read is bounds-checked), but a bug here must not cost a connection.
      this.state = "other";
    }
  }

  private walk(bytes: Uint8Array): void {
    if (this.state === "more" && bytes.length >= CLIENT_PREFACE.length && !CLIENT_PREFACE.equals(bytes.subarray(0, CLIENT_PREFACE.length))) {
      this.state = "other";
      return;
    }
    while (this.next + FRAME_HEADER <= bytes.length) {
      const at = this.next;
      const length = uint24(bytes, at);
      const type = bytes[at + 3]!;
      const flags = bytes[at + 4]!;
      if (this.state === "more" && type === Frame.HEADERS) this.headersBegun = true;
      const end = at + FRAME_HEADER + length;
      if (end > bytes.length) return;
      if (this.state === "more") {
        if (type === Frame.HEADERS) {
          const block = headerBlock(bytes, at);
          if (block === "more") return;
          if (block !== "malformed") {
            this.state = "headers";
            this.patched = patchHeaders(bytes, at, block.segments);
            this.next = block.end;
            continue;
          }
          this.state = "other";
        } else if (type !== Frame.SETTINGS && type !== Frame.WINDOW_UPDATE && type !== Frame.PRIORITY) {
          this.state = "other";
        }
      }
      if (type === Frame.SETTINGS && (flags & Flag.ACK) !== 0 && length === 0 && this.settingsAck === undefined) this.settingsAck = at;
      this.next = end;
      if (this.state !== "more" && this.settingsAck !== undefined) return;
    }
  }
}

/** One-shot form of ClientStart, for bytes already complete: patches in place and says what it found. */
export function patchFirstHeaders(bytes: Uint8Array): { state: FirstFramesState; patched: boolean } {
  const start = new ClientStart();
  start.scan(bytes);
  return { state: start.state, patched: start.patched };
}

type Segment = readonly [start: number, end: number];

/**
 * The header block fragments of the HEADERS frame at `at` and the CONTINUATION frames that follow it
 * (RFC 9113 §6.2, §6.10), without padding and priority fields.
 */
function headerBlock(bytes: Uint8Array, at: number): { segments: Segment[]; end: number } | "more" | "malformed" {
  const fragment = headersFragment(bytes, at);
  if (!fragment) return "malformed";
  let flags = bytes[at + 4]!;
  const stream = streamId(bytes, at);
  const segments: Segment[] = [fragment];
  let next = at + FRAME_HEADER + uint24(bytes, at);
  while ((flags & Flag.END_HEADERS) === 0) {
    if (next + FRAME_HEADER > bytes.length) return "more";
    if (bytes[next + 3] !== Frame.CONTINUATION || streamId(bytes, next) !== stream) return "malformed";
    const len = uint24(bytes, next);
    if (next + FRAME_HEADER + len > bytes.length) return "more";
    flags = bytes[next + 4]!;
    segments.push([next + FRAME_HEADER, next + FRAME_HEADER + len]);
    next += FRAME_HEADER + len;
  }
  return { segments, end: next };
}

/** The header block fragment of the (complete) HEADERS frame at `at`. */
function headersFragment(bytes: Uint8Array, at: number): Segment | undefined {
  const flags = bytes[at + 4]!;
  let start = at + FRAME_HEADER;
  let end = start + uint24(bytes, at);
  if (flags & Flag.PADDED) {
    if (end === start) return undefined;
    end -= bytes[start]!;
    start += 1;
  }
  if (flags & Flag.PRIORITY) start += PRIORITY_FIELDS;
  return end < start ? undefined : [start, end];
}

const uint24 = (bytes: Uint8Array, at: number) => (bytes[at]! << 16) | (bytes[at + 1]! << 8) | bytes[at + 2]!;
const streamId = (bytes: Uint8Array, at: number) => ((bytes[at + 5]! & 0x7f) << 24 | (bytes[at + 6]! << 16) | (bytes[at + 7]! << 8) | bytes[at + 8]!) >>> 0;

/** Rewrites the `:authority` of the header block in `segments` (HEADERS frame at `at`); true if it did. */
function patchHeaders(bytes: Uint8Array, at: number, segments: Segment[]): boolean {
  const [start0, end0] = segments[0]!;
  const block = segments.length === 1 ? bytes.subarray(start0, end0) : Buffer.concat(segments.map(([s, e]) => bytes.subarray(s, e)));
  const value = findAuthority(block);
  if (!value) return false;
  const octets = stringOctets(block, value);
  if (!octets || !octets.includes(SLASH)) return false;
  const host = URL_AUTHORITY.exec(octets.toString("latin1"))?.[1];
  if (host !== undefined && value.end <= end0 - start0) {
    const shorter = encodeString(Buffer.from(host, "latin1"), value.huffman);
    if (shorter && shrinkInHeaders(bytes, at, start0 + value.head, start0 + value.end, shorter)) return true;
  }
  const dotted = encodeString(octets.map((c) => (c === SLASH ? DOT : c)), value.huffman);
  // Equal for any valid input (same code lengths, padding under 8 bits); checked so nothing can move.
  if (!dotted || dotted.length !== value.end - value.head) return false;
  block.set(dotted, value.head);
  if (segments.length > 1) {
    let offset = 0;
    for (const [s, e] of segments) {
      bytes.set(block.subarray(offset, offset + e - s), s);
      offset += e - s;
    }
  }
  return true;
}

/**
 * Replaces the string representation at [from, to) of the HEADERS frame at `at` with the shorter
 * `replacement`, padding the frame by the difference so that its length stays. False if it cannot.
 */
function shrinkInHeaders(bytes: Uint8Array, at: number, from: number, to: number, replacement: Buffer): boolean {
  const fragment = headersFragment(bytes, at);
  const saved = to - from - replacement.length;
  if (!fragment || saved <= 0) return false;
  const flags = bytes[at + 4]!;
  const payload = at + FRAME_HEADER;
  const length = uint24(bytes, at);
  const priority = (flags & Flag.PRIORITY) ? PRIORITY_FIELDS : 0;
  const fragmentLength = fragment[1] - fragment[0] - saved;
  const padding = length - 1 - priority - fragmentLength;
  if (padding > MAX_PADDING) return false;
  const rewritten = Buffer.concat([
    Buffer.from([padding]),
    bytes.subarray(fragment[0] - priority, fragment[0]),
    bytes.subarray(fragment[0], from),
    replacement,
    bytes.subarray(to, fragment[1]),
    Buffer.alloc(padding),
  ]);
  bytes.set(rewritten, payload);
  bytes[at + 4] = flags | Flag.PADDED;
  return true;
}

/** A string literal: `head` is its first byte (H bit and length), the octets are [start, end). */
interface Str { huffman: boolean; head: number; start: number; end: number }

/**
 * The value of the first `:authority` literal of one HPACK header block (RFC 7541 §6). Names are
 * matched by static index 1 or as a new name; a dynamic-table name cannot be `:authority` before the
 * first `:authority` literal, the one wanted here.
 */
function findAuthority(block: Uint8Array): Str | undefined {
  let p = 0;
  while (p < block.length) {
    const b = block[p]!;
    if ((b & 0x80) !== 0 || (b & 0xe0) === 0x20) {
      // An indexed field (a reference, not a literal) or a dynamic table size update.
      const skip = readInt(block, p, (b & 0x80) ? 7 : 5);
      if (!skip) return undefined;
      p = skip.next;
      continue;
    }
    // Literal with incremental indexing (01), without indexing (0000) or never indexed (0001).
    const index = readInt(block, p, (b & 0x40) ? 6 : 4);
    if (!index) return undefined;
    p = index.next;
    let isAuthority = index.value === AUTHORITY_INDEX;
    if (index.value === 0) {
      const name = readString(block, p);
      if (!name) return undefined;
      // ":authority" is 10 octets raw and 8 in Huffman; a longer name is another one.
      isAuthority = name.end - name.start <= AUTHORITY.length && AUTHORITY.equals(stringOctets(block, name) ?? Buffer.alloc(0));
      p = name.end;
    }
    const value = readString(block, p);
    if (!value) return undefined;
    if (isAuthority) return value;
    p = value.end;
  }
  return undefined;
}

/** An HPACK integer with an N-bit prefix (RFC 7541 §5.1); undefined if cut short or over 2^35. */
function readInt(block: Uint8Array, p: number, prefixBits: number): { value: number; next: number } | undefined {
  const max = (1 << prefixBits) - 1;
  let value = block[p]! & max;
  let next = p + 1;
  if (value < max) return { value, next };
  for (let shift = 0; shift <= 28; shift += 7) {
    if (next >= block.length) return undefined;
    const c = block[next++]!;
    value += (c & 0x7f) * 2 ** shift;
    if ((c & 0x80) === 0) return { value, next };
  }
  return undefined;
}

function readString(block: Uint8Array, p: number): Str | undefined {
  if (p >= block.length) return undefined;
  const len = readInt(block, p, 7);
  if (!len || len.next + len.value > block.length) return undefined;
  return { huffman: (block[p]! & 0x80) !== 0, head: p, start: len.next, end: len.next + len.value };
}

/** The octets of a string literal; undefined if its Huffman code is not valid (bad padding, EOS inside). */
function stringOctets(block: Uint8Array, s: Str): Buffer | undefined {
  if (!s.huffman) return Buffer.from(block.subarray(s.start, s.end));
  try {
    const decoder = hpack.decoder.create();
    decoder.push(Buffer.from(block.buffer, block.byteOffset + s.head, s.end - s.head));
    return Buffer.from(decoder.decodeStr());
  } catch {
    return undefined;
  }
}

/** A string literal's representation (length prefix and octets), as hpack.js encodes it. */
function encodeString(octets: Uint8Array, huffman: boolean): Buffer | undefined {
  try {
    const encoder = hpack.encoder.create();
    encoder.encodeStr([...octets], huffman);
    return Buffer.concat(encoder.render());
  } catch {
    return undefined;
  }
}
