/** The browser client's pure parts: prefix ranges as clientv3 builds them, and text decoding of values. */
import t from "tap";
import { prefixRange, text } from "../../src/browser/client.js";

const bytes = (...b: number[]) => new Uint8Array(b);

t.test("prefixRange: the last byte below 0xff is incremented, the rest trimmed", async (t) => {
  t.same(prefixRange("ui/"), { key: new TextEncoder().encode("ui/"), rangeEnd: new TextEncoder().encode("ui0") });
  t.same(prefixRange("a"), { key: bytes(0x61), rangeEnd: bytes(0x62) });
  t.same(prefixRange("\u00ff").rangeEnd, bytes(0xc3, 0xc0), "UTF-8 bytes, not code points: c3 bf → c3 c0");
});

t.test("prefixRange: the empty prefix is every key", async (t) => {
  t.same(prefixRange(""), { key: bytes(0), rangeEnd: bytes(0) });
});

t.test("text: UTF-8 or undefined", async (t) => {
  t.equal(text(new TextEncoder().encode("héllo")), "héllo");
  t.equal(text(bytes(0xff, 0xfe)), undefined, "not UTF-8: the caller shows hex");
});
