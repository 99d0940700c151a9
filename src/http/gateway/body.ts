/**
 * Request bodies of the gateway: read whole for unary and server-streaming calls, or cut into request
 * messages as they arrive for watch and keep-alive. Both are bounded.
 */
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import { decodeMessage } from "./json.js";
import { JsonSplitter, tooLarge } from "./json-splitter.js";

/**
 * Largest JSON body (or streamed object) for a given --max-send-bytes: twice the message limit, because
 * base64 makes bytes 4/3 longer and field names and spacing add more. A body over it is refused with
 * ResourceExhausted (429) without reading on; a body under it whose message is still over
 * --max-send-bytes is refused by the RPC handler with the same code, as a gRPC client's would be.
 */
export const jsonLimitFor = (maxSendBytes: number) => 2 * maxSendBytes;

/**
 * The first JSON value of the body as a message, as grpc-gateway decodes unary bodies: an empty body is
 * the default message, and whatever follows the first value is ignored.
 */
export async function readMessage<Desc extends DescMessage>(req: Request, schema: Desc, maxBytes: number): Promise<MessageShape<Desc>> {
  const declared = Number(req.headers.get("content-length") ?? NaN);
  if (declared > maxBytes) throw tooLarge(maxBytes);
  const splitter = new JsonSplitter(maxBytes);
  if (req.body) {
    let read = 0;
    for await (const chunk of chunksOf(req.body)) {
      read += chunk.length;
      if (read > maxBytes) throw tooLarge(maxBytes);
      const values = splitter.push(chunk);
      if (values.length > 0) return decodeMessage(schema, values[0]!);
    }
  }
  const [last] = splitter.end();
  return last === undefined ? create(schema) : decodeMessage(schema, last);
}

/**
 * Request messages as they arrive in the body, each sent on as soon as its JSON value is complete. The
 * splitter holds at most one unfinished value (bounded by `maxBytes`); the next chunk is read only when
 * the stream asks for the next message, so a fast sender is slowed to the pace of the RPC.
 */
export async function* readMessages<Desc extends DescMessage>(body: ReadableStream<Uint8Array> | null, schema: Desc, maxBytes: number): AsyncGenerator<MessageShape<Desc>> {
  const splitter = new JsonSplitter(maxBytes);
  if (body) {
    for await (const chunk of chunksOf(body)) {
      for (const text of splitter.push(chunk)) yield decodeMessage(schema, text);
    }
  }
  for (const text of splitter.end()) yield decodeMessage(schema, text);
}

/** The chunks of a body; stopping early cancels the body, so the server can drain or drop the rest. */
async function* chunksOf(body: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  const reader = body.getReader();
  let done = false;
  try {
    for (;;) {
      const r = await reader.read();
      if (r.done) {
        done = true;
        return;
      }
      yield r.value;
    }
  } finally {
    if (!done) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}
