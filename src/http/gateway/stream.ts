/**
 * A streaming RPC on a gateway path (watch, lease keep-alive, snapshot, election observe): chunked JSON
 * out, one `{"result":…}\n` line per message, each its own HTTP chunk (python etcd3gw decodes chunk by
 * chunk). For watch and keep-alive the body is a stream too: every JSON object is sent as one request as
 * soon as it is complete, and the end of the body half-closes the RPC, so a watch stays open after it as
 * it does on etcd.
 */
import type { DescMessage, DescMethodStreaming, MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { readMessage, readMessages } from "./body.js";
import { gatewayError, streamErrorLine } from "./errors.js";
import { encodeMessage } from "./json.js";
import { callMetadata } from "./metadata.js";
import { errorResponse, RESULT_HEADERS } from "./response.js";
import { canceled, deadlineExceeded } from "../../wire/errors.js";

const encoder = new TextEncoder();

export function streamCall<I extends DescMessage, O extends DescMessage>(method: DescMethodStreaming<I, O>, transport: Transport, maxJsonBytes: number) {
  return async (req: Request): Promise<Response> => {
    // Owned by this call: aborted when the client goes away, when a request object is bad, or when the
    // response ends, so the RPC (and etcd's stream behind it) never outlives the HTTP exchange.
    const abort = new AbortController();
    const clientGone = () => abort.abort(canceled());
    req.signal.addEventListener("abort", clientGone, { once: true });
    const done = () => {
      req.signal.removeEventListener("abort", clientGone);
      abort.abort();
    };
    // A bad request object mid-stream ends the stream with its own error line. (grpc-gateway only stops
    // reading the body there, leaving later requests unsent without saying so.)
    let inputError: ConnectError | undefined;
    const failInput = (err: unknown) => {
      inputError = ConnectError.from(err);
      abort.abort(inputError);
    };
    try {
      const md = callMetadata(req);
      const input = method.methodKind === "server_streaming"
        ? once(await readMessage(req, method.input, maxJsonBytes))
        : guarded(readMessages(req.body, method.input, maxJsonBytes), failInput);
      if (md.expired) throw deadlineExceeded();
      const res = await transport.stream(method, abort.signal, md.timeoutMs, md.headers, input);
      const messages = res.message[Symbol.asyncIterator]();
      // Like grpc-gateway, answer only once the stream has said something: an error before the first
      // message still gets a status of its own and the unary error body.
      const first = await messages.next();
      return new Response(lines(method.output, first, messages, () => inputError, done), { status: 200, headers: RESULT_HEADERS });
    } catch (err) {
      done();
      return errorResponse(gatewayError(inputError ?? err));
    }
  };
}

/**
 * The response body. Pull-based with the default high-water mark of one chunk: the next message is taken
 * from the RPC only when the client has taken the last, so a slow reader slows the stream instead of
 * filling memory.
 */
function lines<O extends DescMessage>(schema: O, first: IteratorResult<MessageShape<O>>, messages: AsyncIterator<MessageShape<O>>, inputError: () => ConnectError | undefined, done: () => void): ReadableStream<Uint8Array> {
  let pending: IteratorResult<MessageShape<O>> | undefined = first;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const r = pending ?? (await messages.next());
        pending = undefined;
        if (r.done) {
          controller.close();
          done();
          return;
        }
        controller.enqueue(encoder.encode(`{"result":${encodeMessage(schema, r.value)}}\n`));
      } catch (err) {
        controller.enqueue(encoder.encode(streamErrorLine(gatewayError(inputError() ?? err))));
        controller.close();
        done();
      }
    },
    cancel() {
      // The client went away while the stream was open.
      done();
      void messages.return?.().catch(() => {});
    },
  });
}

async function* once<T>(message: T): AsyncGenerator<T> {
  yield message;
}

/** The request stream, with a bad object reported through `fail` (which aborts the call) instead of thrown into Connect. */
async function* guarded<T>(source: AsyncGenerator<T>, fail: (err: unknown) => void): AsyncGenerator<T> {
  try {
    yield* source;
  } catch (err) {
    fail(err);
  }
}
