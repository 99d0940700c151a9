/**
 * Forwarded answers go out as etcd's own bytes (wire/shared-replies.ts keepEncoding): the unary caller keeps
 * the bytes it decoded an answer from, and binaryOf (what the fast paths write) returns exactly those, so
 * nothing is encoded again. Shown with a gRPC server standing in for etcd that answers with bytes
 * protobuf-es would not write itself (fields out of number order): kept, they come back as sent; with
 * keepAnswerBytes off (--namespace, whose layer changes answers in place) the answer is encoded anew.
 */
import { toBinary } from "@bufbuild/protobuf";
import * as http2 from "node:http2";
import t from "tap";
import { KV, RangeResponseSchema, type RangeRequest, type RangeResponse } from "../../gen/etcdserverpb/rpc_pb.js";
import { UnaryCaller } from "../../src/upstream/client/unary-caller.js";
import { binaryOf } from "../../src/wire/shared-replies.js";

// RangeResponse{count: 7 (field 4), header{revision: 5} (field 1)}: count written before the header.
const OUT_OF_ORDER = Buffer.from([0x20, 0x07, 0x0a, 0x02, 0x18, 0x05]);

const server = http2.createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    res.writeHead(200, { "content-type": "application/grpc" });
    const frame = Buffer.alloc(5 + OUT_OF_ORDER.length);
    frame.writeUInt32BE(OUT_OF_ORDER.length, 1);
    OUT_OF_ORDER.copy(frame, 5);
    res.addTrailers({ "grpc-status": "0" });
    res.end(frame);
  });
});
await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
t.teardown(() => new Promise<void>((r) => server.close(() => r())));
const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;

for (const keep of [true, false]) {
  t.test(keep ? "kept: etcd's bytes go out as they came" : "not kept (--namespace): encoded anew", async (t) => {
    const caller = new UnaryCaller({ url, tls: undefined, maxSendBytes: 1 << 20, maxRecvBytes: 1 << 20, keepAliveTimeMs: 0, keepAliveTimeoutMs: 0, keepAnswerBytes: keep });
    t.teardown(() => caller.close());
    const reply = await caller.call<RangeRequest, RangeResponse>(KV.method.range, { key: new Uint8Array([1]) });
    t.equal(reply.count, 7n);
    const written = Buffer.from(binaryOf(RangeResponseSchema, reply));
    if (keep) t.same(written, OUT_OF_ORDER, "the very bytes etcd sent");
    else t.same(written, Buffer.from(toBinary(RangeResponseSchema, reply)), "protobuf-es's own encoding");
    t.notOk(Buffer.from(toBinary(RangeResponseSchema, reply)).equals(OUT_OF_ORDER), "(protobuf-es's encoding differs from etcd's here)");
  });
}
