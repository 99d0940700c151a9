/**
 * The JSON gateway's pure parts: the streaming JSON splitter, etcd's JSON mapping (decode and encode),
 * the request metadata, and the error shapes. The e2e tests compare the whole against etcd.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import fc from "fast-check";
import t from "tap";
import { AuthUserAddRequestSchema, LeaseGrantRequestSchema, RangeRequestSchema, TxnRequestSchema, AuthUserListResponseSchema, WatchRequestSchema } from "../../gen/etcdserverpb/rpc_pb.js";
import { errorBody, gatewayError, httpStatusOf, preconditionStatusFor, streamErrorLine } from "../../src/http/gateway/errors.js";
import { decodeMessage, encodeMessage, goJson } from "../../src/http/gateway/json.js";
import { JsonSplitter } from "../../src/http/gateway/json-splitter.js";
import { callMetadata } from "../../src/http/gateway/metadata.js";

const enc = (s: string) => new TextEncoder().encode(s);

function splitAll(text: string, cuts: number[], max = 1 << 20): string[] {
  const bytes = enc(text);
  const s = new JsonSplitter(max);
  const out: string[] = [];
  let at = 0;
  for (const cut of [...cuts.filter((c) => c > 0 && c < bytes.length)].sort((a, b) => a - b).concat(bytes.length)) {
    out.push(...s.push(bytes.subarray(at, cut)));
    at = cut;
  }
  return [...out, ...s.end()];
}

t.test("splitter: concatenated values come out whole, wherever the chunks are cut", async (t) => {
  const value = fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v));
  const space = fc.constantFrom("", " ", "\n", "\r\n\t ");
  fc.assert(fc.property(fc.array(fc.tuple(value, space), { maxLength: 6 }), fc.array(fc.nat(400)), (values, cuts) => {
    // Bare scalars need a separator from the next value, as in any JSON stream.
    const text = values.map(([v, sp]) => v + (sp || " ")).join("");
    const got = splitAll(text, cuts);
    t.same(got, values.map(([v]) => v));
    return true;
  }), { numRuns: 300 });
});

t.test("splitter: strings hide braces and escaped quotes; stray bytes are values of their own", async (t) => {
  t.same(splitAll('{"a":"}{\\"}"}{"b":[1,{"c":"]"}]}', [3, 9, 10]), ['{"a":"}{\\"}"}', '{"b":[1,{"c":"]"}]}']);
  t.same(splitAll('{"a":1}]', []), ['{"a":1}', "]"]);
  t.same(splitAll('null true 12 "x"{}', [7]), ["null", "true", "12", '"x"', "{}"]);
  t.same(splitAll("  \n ", []), []);
});

t.test("splitter: bounds and truncation", async (t) => {
  t.throws(() => splitAll('{"a":"', []), new ConnectError("unexpected EOF", Code.InvalidArgument));
  const deep = "[".repeat(1001) + "]".repeat(1001);
  t.throws(() => splitAll(deep, []), { code: Code.InvalidArgument });
  t.same(splitAll("[".repeat(1000) + "]".repeat(1000), []).length, 1);
  // 20 bytes allowed: a 21-byte value is refused whether it arrives at once or in pieces.
  t.throws(() => splitAll(`{"k":"${"x".repeat(13)}"}`, [], 20), { code: Code.ResourceExhausted });
  t.throws(() => splitAll(`{"k":"${"x".repeat(13)}"}`, [5, 10, 15], 20), { code: Code.ResourceExhausted });
  t.same(splitAll(`{"k":"${"x".repeat(12)}"}{"k":"${"y".repeat(12)}"}`, [5, 25], 20).length, 2, "the bound is per value");
  // Multi-byte UTF-8 cut in the middle of a character still decodes.
  t.same(splitAll('{"n":"é€😀"}', [7, 8, 11]), ['{"n":"é€😀"}']);
});

t.test("decode: etcd's input forms", async (t) => {
  const r = decodeMessage(RangeRequestSchema, '{"key":"YQ==","range_end":"Yg==","limit":"5","keysOnly":true,"sort_order":"DESCEND","sortTarget":2,"unknown":{"x":[1]}}');
  t.same([r.key, r.rangeEnd, r.limit, r.keysOnly, r.sortOrder, r.sortTarget], [enc("a"), enc("b"), 5n, true, 2, 2]);
  t.same(decodeMessage(RangeRequestSchema, "null"), create(RangeRequestSchema));
  t.equal(decodeMessage(LeaseGrantRequestSchema, '{"ID":4611686018427387905,"TTL":-12345678901234567}').ID, 4611686018427387905n, "int64 beyond 2^53 stays exact");
  t.equal(decodeMessage(LeaseGrantRequestSchema, '{"ID":4611686018427387905,"TTL":-12345678901234567}').TTL, -12345678901234567n);
  const txn = decodeMessage(TxnRequestSchema, '{"success":[{"request_txn":{"compare":[{"target":"LEASE","lease":9007199254740993}]}}]}');
  const nested = txn.success[0]!.request.value as { compare: { targetUnion: { value: unknown } }[] };
  t.equal(nested.compare[0]!.targetUnion.value, 9007199254740993n, "exact inside nested messages too");
  t.same(decodeMessage(WatchRequestSchema, '{"progress_request":{}}').requestUnion.case, "progressRequest");
  t.equal(decodeMessage(AuthUserAddRequestSchema, '{"name":"a\\"12345678901234567","password":"12345678901234567"}').name, 'a"12345678901234567', "digits inside strings are left alone");
});

t.test("decode: what etcd refuses is refused with InvalidArgument", async (t) => {
  const refuses = (text: string, message?: RegExp | string) => {
    try {
      decodeMessage(RangeRequestSchema, text);
      t.fail(`accepted ${text}`);
    } catch (err) {
      t.equal((err as ConnectError).code, Code.InvalidArgument, text);
      if (message) t.match((err as ConnectError).rawMessage, message);
    }
  };
  refuses('{"sort_order":"BOGUS"}', 'unknown value "BOGUS" for enum etcdserverpb.RangeRequest_SortOrder');
  refuses('{"keys_only":"true"}');
  refuses('{"limit":1.5}');
  refuses('{"limit":"x"}');
  refuses('{"key":12345678901234567}', /key/);
  refuses('{"keys_only":12345678901234567}', /keys_only/);
  refuses("[]");
  refuses('"x"');
  refuses("{bad json}");
  refuses('{"key":"!!!!"}');
  t.throws(() => decodeMessage(WatchRequestSchema, '{"create_request":{"filters":["NOPUT","BOGUS"]}}'), { rawMessage: 'unknown value "BOGUS" for enum etcdserverpb.WatchCreateRequest_FilterType', code: Code.InvalidArgument });
});

t.test("encode: proto names, Go's escaping", async (t) => {
  t.equal(goJson({ s: "<a&b>\u2028\u2029é\"" }), '{"s":"\\u003ca\\u0026b\\u003e\\u2028\\u2029é\\""}');
  t.equal(encodeMessage(AuthUserListResponseSchema, create(AuthUserListResponseSchema, { users: ["<x>"] })), '{"users":["\\u003cx\\u003e"]}');
  t.equal(encodeMessage(LeaseGrantRequestSchema, create(LeaseGrantRequestSchema, { ID: 2n ** 62n + 1n, TTL: 0n })), '{"ID":"4611686018427387905"}');
});

t.test("metadata: Authorization, Grpc-Metadata-*, Grpc-Timeout", async (t) => {
  const md = (headers: Record<string, string>) => callMetadata(new Request("http://x/v3/kv/range", { method: "POST", headers }));
  const m = md({ Authorization: "tok.1", "Grpc-Metadata-Token": "tok.2", "Grpc-Metadata-Hasleader": "true", "Grpc-Metadata-Content-Type": "text/evil", "Grpc-Metadata-Connect-Timeout-Ms": "1", "Other": "x" });
  t.same([...m.headers.entries()].sort(), [["authorization", "tok.1"], ["hasleader", "true"], ["token", "tok.2"]]);
  t.same([md({}).timeoutMs, md({}).expired], [undefined, false]);
  t.same([md({ "Grpc-Timeout": "5S" }).timeoutMs, md({ "Grpc-Timeout": "2M" }).timeoutMs, md({ "Grpc-Timeout": "1500u" }).timeoutMs], [5000, 120_000, 1]);
  t.same([md({ "Grpc-Timeout": "1n" }).expired, md({ "Grpc-Timeout": "999u" }).expired, md({ "Grpc-Timeout": "-5S" }).expired], [true, true, true]);
  t.equal(md({ "Grpc-Timeout": "99999999H" }).timeoutMs, 2 ** 31 - 1, "held at what a timer can wait");
  for (const bad of ["bogus", "5", "S", "5s", "1.5S"]) {
    t.throws(() => md({ "Grpc-Timeout": bad }), { rawMessage: `invalid grpc-timeout: ${bad}`, code: Code.InvalidArgument });
  }
});

t.test("errors: grpc-gateway's shapes and statuses", async (t) => {
  const e = new ConnectError("etcdserver: requested lease not found", Code.NotFound);
  t.equal(errorBody(e), '{"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5}');
  t.equal(streamErrorLine(new ConnectError("etcdserver: no leader", Code.Unavailable)), '{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}}');
  t.same([Code.Canceled, Code.InvalidArgument, Code.DeadlineExceeded, Code.ResourceExhausted, Code.FailedPrecondition, Code.Unauthenticated, Code.Unknown].map((c) => httpStatusOf(c)), [408, 400, 504, 429, 412, 401, 500]);
  t.same(["3.4.23", "3.5.21", "3.6.0", "4.0.0", "garbage", undefined].map(preconditionStatusFor), [412, 400, 400, 400, 412, 412], "FailedPrecondition: 412 up to etcd 3.4, 400 after");
  t.equal(gatewayError(new ConnectError("the operation timed out", Code.DeadlineExceeded)).rawMessage, "context deadline exceeded");
  t.equal(gatewayError(new Error("boom")).code, Code.Unknown);
  t.equal(gatewayError(new ConnectError("etcdserver: request timed out", Code.DeadlineExceeded)).rawMessage, "etcdserver: request timed out", "etcd's own text is kept");
});
