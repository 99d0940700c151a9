/**
 * Ceiling: a bare node:http2 server that answers KV.Range with one reply encoded at start-up (the real
 * reply etcd gives for the hot key) and nothing else. It reads each request to its end, as a proxy must
 * before it can answer, and decodes nothing: the best any Node proxy could do for a cache hit here.
 */
import * as http2 from "node:http2";
import { openSession, unaryAsync } from "../load/grpc-raw.js";
import { frame } from "../load/grpc-frame.js";
import { PATH, rangeRequest } from "../load/messages.js";
import { ceilingArgs } from "./args.js";

const { host, port, etcdUrl } = ceilingArgs(process.argv.slice(2));
const etcd = await openSession(etcdUrl);
const reply = frame(await unaryAsync(etcd, PATH.range, rangeRequest(true)));
etcd.close();

const OK_HEADERS = { ":status": 200, "content-type": "application/grpc" };
const OK_TRAILERS = { "grpc-status": "0" };
const UNIMPLEMENTED = { ":status": 200, "content-type": "application/grpc", "grpc-status": "12", "grpc-message": "static ceiling answers KV.Range only" };

const server = http2.createServer({ maxSessionMemory: 256 });
server.on("sessionError", () => {});
server.on("stream", (stream, headers) => {
  stream.on("error", () => {});
  if (headers[":path"] !== PATH.range) {
    stream.respond(UNIMPLEMENTED, { endStream: true });
    return;
  }
  stream.resume();
  stream.on("end", () => {
    if (stream.closed) return;
    stream.respond(OK_HEADERS, { waitForTrailers: true });
    stream.on("wantTrailers", () => stream.sendTrailers(OK_TRAILERS));
    stream.end(reply);
  });
});
server.listen(port, host, () => process.stderr.write(`static ceiling listening on ${host}:${port}\n`));
process.on("SIGTERM", () => process.exit(0));
