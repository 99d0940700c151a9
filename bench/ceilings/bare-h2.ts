/**
 * Idle-RSS reference: a bare node:http2 server (no etcd session, no protobuf), as small as a Node HTTP/2
 * server gets. The goal "idle RSS <= 1.5x a bare Node HTTP/2 server's" compares etcd-edge with it. It
 * answers every stream with gRPC Unimplemented.
 */
import * as http2 from "node:http2";
import { ceilingArgs } from "./args.js";

const { host, port } = ceilingArgs(process.argv.slice(2));
const server = http2.createServer();
server.on("sessionError", () => {});
server.on("stream", (stream) => {
  stream.on("error", () => {});
  stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": "12" }, { endStream: true });
});
server.listen(port, host, () => process.stderr.write(`bare HTTP/2 server listening on ${host}:${port}\n`));
process.on("SIGTERM", () => process.exit(0));
