/**
 * A request body that is not a valid protobuf message is the client's bad input: InvalidArgument, as
 * connect-es already answers for bad JSON and as our error table says. connect-es reports it as Internal
 * ("parse binary: ..."), which tells the caller the proxy is broken and makes clients retry it.
 */
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";

const PARSE_BINARY = "parse binary:";

/**
 * A Connect `requestGate`: it runs for every RPC before the body is read. connect-es parses the body after
 * the gate, outside any interceptor (for unary calls), and then aborts the call's signal with the error
 * before it writes it to the wire in each protocol (gRPC trailers, gRPC-Web trailer frame, Connect JSON).
 * The abort listener runs synchronously in that window and corrects the code of that one error object.
 * test/integration/bad-input.test.ts fails if a connect-es upgrade changes that order.
 *
 * Mid-stream, an undecodable request message reaches us through the upstream call and keeps its text, so
 * it is corrected the same way. An undecodable answer from etcd would be too; etcd answers with the same
 * .proto files, so that cannot happen short of a corrupted connection.
 */
export function undecodableIsInvalidArgument(context: HandlerContext): void {
  const signal = context.signal;
  signal.addEventListener("abort", () => {
    const reason: unknown = signal.reason;
    if (!(reason instanceof ConnectError) || reason.code !== Code.Internal || !reason.rawMessage.startsWith(PARSE_BINARY)) return;
    const fixed = reason as { code: Code; message: string };
    fixed.code = Code.InvalidArgument;
    fixed.message = `[invalid_argument] ${reason.rawMessage}`;
  }, { once: true });
}
