/** A unary RPC on a gateway path: one JSON body in, one JSON message or error body out. */
import type { DescMessage, DescMethodUnary, MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { readMessage } from "./body.js";
import { gatewayError } from "./errors.js";
import type { UnaryInvoke } from "./in-process.js";
import { encodeMessage } from "./json.js";
import { callMetadata } from "./metadata.js";
import { errorResponse, resultResponse } from "./response.js";

export function unaryCall<I extends DescMessage, O extends DescMessage>(method: DescMethodUnary<I, O>, invoke: UnaryInvoke, maxJsonBytes: number) {
  return async (req: Request): Promise<Response> => {
    try {
      // Metadata first, as grpc-gateway does: a bad Grpc-Timeout is reported before a bad body.
      const md = callMetadata(req);
      const input = await readMessage(req, method.input, maxJsonBytes);
      if (md.expired) throw new ConnectError("context deadline exceeded", Code.DeadlineExceeded);
      const output = (await invoke(input, md, req.signal)) as MessageShape<O>;
      return resultResponse(encodeMessage(method.output, output));
    } catch (err) {
      return errorResponse(gatewayError(err));
    }
  };
}
