/** A unary RPC on a gateway path: one JSON body in, one JSON message or error body out. */
import type { DescMessage, DescMethodUnary, MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Readable } from "node:stream";
import { readMessage } from "./body.js";
import { gatewayError, preconditionStatusFor } from "./errors.js";
import type { UnaryInvoke } from "./in-process.js";
import { encodeMessage } from "./json.js";
import { callMetadata } from "./metadata.js";
import { errorResponse, resultResponse } from "./response.js";
import { UnaryCall } from "../../services/invoke.js";
import { canceled, deadlineExceeded } from "../../wire/errors.js";
import type { Peer } from "../../wire/flow.js";

/**
 * The Node request and response behind a Request, when the adapter passes them (@hono/node-server puts
 * them in the context's env): the body is then read from the Node stream, and the client going away is
 * seen on the response, without building the web stream and AbortSignal a Request makes on first use.
 */
export interface NodeExchange {
  incoming: Readable;
  outgoing: { once(event: "close", fn: () => void): unknown; off(event: "close", fn: () => void): unknown; writableFinished: boolean };
}

export function unaryCall<I extends DescMessage, O extends DescMessage>(method: DescMethodUnary<I, O>, invoke: UnaryInvoke, maxJsonBytes: number, etcdVersion: () => Promise<string | undefined>) {
  return async (req: Request, node?: NodeExchange): Promise<Response> => {
    let gone: AbortController | undefined;
    const onClose = () => {
      if (!node?.outgoing.writableFinished) gone?.abort(canceled());
    };
    try {
      // Metadata first, as grpc-gateway does: a bad Grpc-Timeout is reported before a bad body.
      const md = callMetadata(req);
      const input = await readMessage(req, method.input, maxJsonBytes, node?.incoming);
      if (md.expired) throw deadlineExceeded();
      // --fairness: the connection names the caller's flow (its certificate or address).
      if (UnaryCall.charge) md.peer = (node?.incoming as { socket?: Peer } | undefined)?.socket;
      let signal = req.signal;
      if (node) {
        gone = new AbortController();
        node.outgoing.once("close", onClose);
        signal = gone.signal;
      }
      const output = (await invoke(input, md, signal)) as MessageShape<O>;
      return resultResponse(encodeMessage(method.output, output));
    } catch (err) {
      const e = gatewayError(err);
      return errorResponse(e, e.code === Code.FailedPrecondition ? preconditionStatusFor(await etcdVersion()) : undefined);
    } finally {
      node?.outgoing.off("close", onClose);
    }
  };
}
