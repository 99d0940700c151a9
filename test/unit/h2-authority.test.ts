/**
 * The first header block's `:authority` is rewritten in place: "scheme://host:port" to "host:port" with
 * the difference taken up by padding, or else `/` to `.`; every frame keeps its length, every other header
 * decodes as sent, and no input makes the scanner throw. Header blocks are made with hpack.js's
 * compressor and read back with its decompressor.
 */
import fc from "fast-check";
import { createRequire } from "node:module";
import t from "tap";
import { CLIENT_PREFACE, ClientStart, patchFirstHeaders } from "../../src/listener/h2-authority.js";
import { h2Frame } from "../helpers/raw-rpc.js";

interface Header { name: string; value: string; huffman?: boolean; neverIndex?: boolean; incremental?: boolean }
interface Compressor { write(h: Header[]): void; read(): Buffer | null }
interface Decompressor { write(b: Buffer): void; execute(): void; read(): { name: string; value: string } | null }
const hpack = createRequire(import.meta.url)("hpack.js") as {
  compressor: { create(o: { table: { maxSize: number } }): Compressor };
  decompressor: { create(o: { table: { maxSize: number } }): Decompressor };
};

const HEADERS = 0x1;
const CONTINUATION = 0x9;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY = 0x20;

const frame = h2Frame;
const SETTINGS = frame(0x4, 0, 0, Buffer.alloc(0));
const SETTINGS_ACK = frame(0x4, 0x1, 0, Buffer.alloc(0));
const WINDOW_UPDATE = frame(0x8, 0, 0, Buffer.from([0, 0x0f, 0, 0x01]));
const PING = frame(0x6, 0, 0, Buffer.alloc(8));

function compressor(): Compressor {
  return hpack.compressor.create({ table: { maxSize: 4096 } });
}
function encode(c: Compressor, headers: Header[]): Buffer {
  c.write(headers);
  const out: Buffer[] = [];
  for (let b = c.read(); b; b = c.read()) out.push(b);
  return Buffer.concat(out);
}

interface Shape { pad?: number; priority?: boolean; split?: number }
/** A HEADERS frame (padded, with priority fields, or split into a CONTINUATION at `split`) for `block`. */
function headers(block: Buffer, s: Shape = {}, stream = 1): Buffer {
  const first = s.split === undefined ? block : block.subarray(0, s.split);
  const flags = (s.split === undefined ? END_HEADERS : 0) | (s.pad !== undefined ? PADDED : 0) | (s.priority ? PRIORITY : 0);
  const payload = Buffer.concat([
    s.pad !== undefined ? Buffer.from([s.pad]) : Buffer.alloc(0),
    s.priority ? Buffer.from([0, 0, 0, 3, 15]) : Buffer.alloc(0),
    first,
    Buffer.alloc(s.pad ?? 0),
  ]);
  const out = [frame(HEADERS, flags, stream, payload)];
  if (s.split !== undefined) out.push(frame(CONTINUATION, END_HEADERS, stream, block.subarray(s.split)));
  return Buffer.concat(out);
}

interface Parsed { type: number; flags: number; length: number; payload: Buffer }
function frames(bytes: Buffer): Parsed[] {
  const out: Parsed[] = [];
  for (let p = CLIENT_PREFACE.length; p + 9 <= bytes.length;) {
    const length = bytes.readUIntBE(p, 3);
    out.push({ type: bytes[p + 3]!, flags: bytes[p + 4]!, length, payload: bytes.subarray(p + 9, p + 9 + length) });
    p += 9 + length;
  }
  return out;
}
/** The header block of the first HEADERS frame and its CONTINUATIONs, padding checked to be zeros. */
function firstBlock(bytes: Buffer): Buffer {
  const all = frames(bytes);
  const i = all.findIndex((f) => f.type === HEADERS);
  const h = all[i]!;
  let start = 0;
  let end = h.payload.length;
  if (h.flags & PADDED) {
    end -= h.payload[0]!;
    start = 1;
    if (!h.payload.subarray(end).every((b) => b === 0)) throw new Error("padding is not zeros");
  }
  if (h.flags & PRIORITY) start += 5;
  const parts = [h.payload.subarray(start, end)];
  for (let j = i + 1; !(all[j - 1]!.flags & END_HEADERS); j++) parts.push(all[j]!.payload);
  return Buffer.concat(parts);
}
function decode(blocks: Buffer[]): { name: string; value: string }[][] {
  const d = hpack.decompressor.create({ table: { maxSize: 4096 } });
  return blocks.map((b) => {
    d.write(b);
    d.execute();
    const out: { name: string; value: string }[] = [];
    for (let h = d.read(); h; h = d.read()) out.push({ name: h.name, value: h.value });
    return out;
  });
}
/** Type and length of every frame: what patching must never change. */
const layout = (bytes: Buffer) => frames(bytes).map((f) => [f.type, f.length]);

const request = (authority: string, o: Partial<Header> = {}): Header[] => [
  { name: ":method", value: "POST" },
  { name: ":scheme", value: "http" },
  { name: ":path", value: "/etcdserverpb.Maintenance/Status" },
  { name: ":authority", value: authority, ...o },
  { name: "content-type", value: "application/grpc" },
  { name: "user-agent", value: "grpc-go/1.33.3" },
  { name: "te", value: "trailers" },
];
const connection = (...parts: Buffer[]) => Buffer.concat([CLIENT_PREFACE, SETTINGS, ...parts]);

/** Patches a copy of `bytes`; checks what must always hold and returns the decoded first header list. */
function patched(t: Tap, bytes: Buffer, want: { patched: boolean }): { name: string; value: string }[] {
  const copy = Buffer.from(bytes);
  const r = patchFirstHeaders(copy);
  t.equal(r.state, "headers");
  t.equal(r.patched, want.patched, "patched");
  t.equal(copy.length, bytes.length, "same length");
  t.same(layout(copy), layout(bytes), "every frame keeps its type and length");
  if (!want.patched) t.ok(copy.equals(bytes), "not one byte changed");
  return decode([firstBlock(copy)])[0]!;
}
type Tap = Parameters<Parameters<typeof t.test>[0]>[0];
const authorityOf = (h: { name: string; value: string }[]) => h.find((x) => x.name === ":authority")?.value;

t.test("a URL becomes its host:port, for every literal kind, Huffman or not, and every frame shape", async (t) => {
  const kinds: [string, Partial<Header>][] = [
    ["incremental indexing, indexed name", {}],
    ["without indexing, indexed name", { incremental: false }],
    ["never indexed, new name", { neverIndex: true }],
  ];
  const shapes: Shape[] = [{}, { pad: 0 }, { pad: 7 }, { priority: true }, { pad: 3, priority: true }, { split: 200 }];
  for (const huffman of [true, false]) {
    for (const [kind, o] of kinds) {
      for (const shape of shapes) {
        for (const url of ["http://127.0.0.1:2379", "https://etcd.example:2379/", "unix://sock"]) {
          const sent = request(url, { huffman, ...o });
          const block = encode(compressor(), sent);
          const got = patched(t, connection(SETTINGS_ACK, headers(block, shape)), { patched: true });
          const host = url.replace(/^[a-z]+:\/\//, "").replace(/\/$/, "");
          t.same(got, sent.map((h) => ({ name: h.name, value: h.name === ":authority" ? host : h.value })),
            `${kind}, huffman ${huffman}, ${JSON.stringify(shape)}, ${url}`);
        }
      }
    }
  }
});

t.test("where host:port cannot be had, every / becomes . in place", async (t) => {
  for (const huffman of [true, false]) {
    // No scheme to drop.
    const noScheme = encode(compressor(), request("a/b//c:1", { huffman }));
    t.equal(authorityOf(patched(t, connection(headers(noScheme)), { patched: true })), "a.b..c:1");
    // The value reaches into the CONTINUATION frame.
    const last = encode(compressor(), request("http://127.0.0.1:2379", { huffman }).slice(0, 4));
    t.equal(authorityOf(patched(t, connection(headers(last, { split: last.length - 3 })), { patched: true })), "http:..127.0.0.1:2379");
    // Padding would exceed 255.
    const long = `http://${"h".repeat(300)}:1`;
    const big = encode(compressor(), request(long, { huffman }));
    t.equal(authorityOf(patched(t, connection(headers(big, { pad: 255 })), { patched: true })), long.replaceAll("/", "."));
  }
});

t.test("nothing changes without a / or without an :authority", async (t) => {
  for (const huffman of [true, false]) {
    const plain = encode(compressor(), request("127.0.0.1:2379", { huffman }));
    t.equal(authorityOf(patched(t, connection(headers(plain, { pad: 2 })), { patched: false })), "127.0.0.1:2379");
    const none = encode(compressor(), request("x", { huffman }).filter((h) => h.name !== ":authority").concat({ name: "x-url", value: "http://a/b", huffman }));
    patched(t, connection(headers(none)), { patched: false });
  }
  // Fully indexed: ":authority" with a value from the dynamic table is not a literal.
  const c = compressor();
  encode(c, request("http://127.0.0.1:1"));
  const indexed = connection(headers(encode(c, request("http://127.0.0.1:1"))));
  const copy = Buffer.from(indexed);
  t.same(patchFirstHeaders(copy), { state: "headers", patched: false });
  t.ok(copy.equals(indexed));
});

t.test("a literal without indexing with a new name, made by hand (hpack.js's compressor never makes one)", async (t) => {
  const raw = (v: string) => Buffer.concat([Buffer.from([v.length]), Buffer.from(v)]);
  const block = Buffer.concat([Buffer.from([0x82]), Buffer.from([0x00]), raw(":authority"), raw("http://h:1/"), Buffer.from([0x84])]);
  const got = patched(t, connection(headers(block)), { patched: true });
  t.same(got, [{ name: ":method", value: "GET" }, { name: ":authority", value: "h:1" }, { name: ":path", value: "/" }]);
});

t.test("a dynamic table size update first, then the literal", async (t) => {
  // Size 0, then 4096 (5-bit prefix integer: 31, then 4065 in two 7-bit groups).
  const block = Buffer.concat([Buffer.from([0x20, 0x3f, 0xe1, 0x1f]), encode(compressor(), request("http://127.0.0.1:2379"))]);
  t.equal(block[0]! & 0xe0, 0x20, "the block starts with a size update");
  t.equal(authorityOf(patched(t, connection(headers(block)), { patched: true })), "127.0.0.1:2379");
});

t.test("later blocks on the connection still decode: the dynamic table entry is the patched one", async (t) => {
  const c = compressor();
  const first = encode(c, request("http://127.0.0.1:2379"));
  // Enough new entries that the client's encoder evicts older ones: indices must still agree.
  const later = Array.from({ length: 40 }, (_, i) => encode(c, [...request("http://127.0.0.1:2379"), { name: `x-${i}`, value: "v".repeat(100 + i) }]));
  const bytes = connection(headers(first), ...later.map((b, i) => headers(b, {}, 3 + 2 * i)));
  const copy = Buffer.from(bytes);
  t.equal(patchFirstHeaders(copy).patched, true);
  const blocks = [firstBlock(copy), ...later];
  const lists = decode(blocks);
  const authorities = lists.map(authorityOf);
  t.same(authorities.slice(0, 10), authorities.slice(0, 10).map(() => "127.0.0.1:2379"), "sent by index: the patched value");
  // Once the client's encoder has evicted it, the URL comes again as a literal, unpatched (sniff.ts).
  t.equal(authorities.at(-1), "http://127.0.0.1:2379");
  lists.slice(1).forEach((l, i) => t.same(l.at(-1), { name: `x-${i}`, value: "v".repeat(100 + i) }, `block ${i + 1} decodes as sent`));
});

t.test("what the scanner reports as bytes arrive", async (t) => {
  const block = encode(compressor(), request("http://127.0.0.1:2379"));
  const cases: [string, Buffer, { state: string; headersBegun: boolean; settingsAck: number | undefined }][] = [
    ["part of the preface", CLIENT_PREFACE.subarray(0, 10), { state: "more", headersBegun: false, settingsAck: undefined }],
    ["not a preface", Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), { state: "other", headersBegun: false, settingsAck: undefined }],
    ["preface and SETTINGS (grpc-go waits here)", connection(), { state: "more", headersBegun: false, settingsAck: undefined }],
    ["and WINDOW_UPDATE", connection(WINDOW_UPDATE), { state: "more", headersBegun: false, settingsAck: undefined }],
    ["and half a HEADERS", connection(headers(block).subarray(0, 20)), { state: "more", headersBegun: true, settingsAck: undefined }],
    ["a PING first", connection(PING, headers(block)), { state: "other", headersBegun: false, settingsAck: undefined }],
    ["the ACK, then HEADERS", connection(SETTINGS_ACK, headers(block)), { state: "headers", headersBegun: true, settingsAck: 33 }],
    ["HEADERS, then the ACK", connection(headers(block), SETTINGS_ACK), { state: "headers", headersBegun: true, settingsAck: 33 + 9 + block.length }],
    ["HEADERS waiting for its CONTINUATION", connection(headers(block, { split: 10 }).subarray(0, 9 + 10)), { state: "more", headersBegun: true, settingsAck: undefined }],
    ["HEADERS followed by something else than CONTINUATION", connection(frame(HEADERS, 0, 1, block), PING), { state: "other", headersBegun: true, settingsAck: undefined }],
    ["padding longer than the frame", connection(frame(HEADERS, END_HEADERS | PADDED, 1, Buffer.from([200, 1, 2]))), { state: "other", headersBegun: true, settingsAck: undefined }],
  ];
  for (const [what, bytes, want] of cases) {
    const s = new ClientStart();
    s.scan(Buffer.from(bytes));
    t.same({ state: s.state, headersBegun: s.headersBegun, settingsAck: s.settingsAck }, want, what);
  }
});

t.test("byte by byte gives what all at once gives", async (t) => {
  const block = encode(compressor(), request("http://127.0.0.1:2379"));
  const bytes = connection(WINDOW_UPDATE, SETTINGS_ACK, headers(block, { pad: 4, priority: true }), PING);
  const once = Buffer.from(bytes);
  patchFirstHeaders(once);
  const grown = Buffer.from(bytes);
  const s = new ClientStart();
  for (let n = 0; n <= grown.length; n++) s.scan(grown.subarray(0, n));
  t.equal(s.state, "headers");
  t.equal(s.settingsAck, CLIENT_PREFACE.length + 9 + 13);
  t.ok(grown.equals(once));
});

t.test("property: any bytes, never a throw, never a change of length or frame layout", async (t) => {
  const tail = fc.uint8Array({ maxLength: 300 });
  const anyStart = fc.oneof(
    tail.map((b) => Buffer.from(b)),
    tail.map((b) => Buffer.concat([CLIENT_PREFACE, b])),
    // A HEADERS frame with an arbitrary block and flags, so the HPACK walk sees garbage too.
    fc.tuple(fc.integer({ min: 0, max: 255 }), tail, tail).map(([flags, block, rest]) => connection(frame(HEADERS, flags, 1, block), Buffer.from(rest))),
  );
  fc.assert(fc.property(anyStart, fc.integer({ min: 1, max: 50 }), (bytes, step) => {
    const once = Buffer.from(bytes);
    patchFirstHeaders(once);
    const grown = Buffer.from(bytes);
    const s = new ClientStart();
    for (let n = 0; n < grown.length + step; n += step) s.scan(grown.subarray(0, Math.min(n, grown.length)));
    return once.length === bytes.length && grown.equals(once) && (bytes.length < CLIENT_PREFACE.length || JSON.stringify(layout(once)) === JSON.stringify(layout(bytes)));
  }), { numRuns: 2000 });
  t.pass();
});

t.test("property: any :authority with a /, any frame shape: the other headers are untouched", async (t) => {
  const chars = fc.constantFrom(..."abcxyz0129.-:/_%~@[]");
  const authority = fc.tuple(fc.constantFrom("", "http://", "https://", "h2://"), fc.string({ unit: chars, minLength: 1, maxLength: 60 }))
    .map(([scheme, rest]) => scheme + rest).filter((a) => a.includes("/"));
  const shape = fc.record({ pad: fc.option(fc.integer({ min: 0, max: 255 }), { nil: undefined }), priority: fc.boolean() });
  fc.assert(fc.property(authority, fc.boolean(), shape, (value, huffman, s) => {
    const sent = request(value, { huffman });
    const bytes = connection(headers(encode(compressor(), sent), s));
    const copy = Buffer.from(bytes);
    if (!patchFirstHeaders(copy).patched) return false;
    const got = decode([firstBlock(copy)])[0]!;
    const host = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]+)/.exec(value)?.[1];
    const a = authorityOf(got);
    return (a === host || a === value.replaceAll("/", ".")) && JSON.stringify(layout(copy)) === JSON.stringify(layout(bytes))
      && JSON.stringify(got.filter((h) => h.name !== ":authority")) === JSON.stringify(sent.filter((h) => h.name !== ":authority").map(({ name, value }) => ({ name, value })));
  }), { numRuns: 500 });
  t.pass();
});
