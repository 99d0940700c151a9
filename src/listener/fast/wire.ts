/**
 * How one unary call looks on the wire in each protocol the fast unary path serves (wire.md §2-§4), and
 * which one a request speaks. Only the identity encoding is here, and gRPC-Web in binary: compressed
 * bodies, gRPC-Web text, Connect GET and streams stay with the Connect handlers (connect-adapter.ts).
 */
import type { DescMessage, Message } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import type * as http from "node:http";
import type { Protocol } from "../../observe/rpc-metrics.js";
import type { Timeout } from "../../wire/timeout.js";
import type { Exchange } from "./exchange.js";

export interface UnaryWire {
  protocol: Protocol;
  /** Bytes of framing around the one message (the 5-byte gRPC prefix); the size limit adds this. */
  framing: number;
  /** The call's deadline from its headers. */
  timeout(headers: http.IncomingHttpHeaders): Timeout;
  /** The request message from the whole body; a ConnectError (InvalidArgument) when it is not one. */
  parse(input: DescMessage, body: Buffer): Message;
  ok(x: Exchange, output: DescMessage, message: Message): void;
  error(x: Exchange, err: ConnectError): void;
}
