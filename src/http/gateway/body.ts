/**
 * Request bodies of the gateway: read whole for unary and server-streaming calls, or cut into request
 * messages as they arrive for watch and keep-alive. Both are bounded.
 */
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import type { Readable } from "node:stream";
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
export async function readMessage<Desc extends DescMessage>(req: Request, schema: Desc, maxBytes: number, incoming?: Readable): Promise<MessageShape<Desc>> {
  const declared = Number(req.headers.get("content-length") ?? NaN);
  if (declared > maxBytes) throw tooLarge(maxBytes);
  const splitter = new JsonSplitter(maxBytes);
  if (incoming) {
    const text = await firstValue(incoming, splitter, maxBytes);
    return text === undefined ? create(schema) : decodeMessage(schema, text);
  }
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
 * The first JSON value of a Node request body, read from the Node stream itself (the adapter passes it,
 * http/gateway/paths.ts): building the web stream of Request.body cost more than the rest of a cached
 * Range through the gateway. Once the value is complete (or the bound is passed) the rest of the body is
 * read and dropped, never stored, so an HTTP/1.1 connection stays usable for the next request.
 */
function firstValue(incoming: Readable, splitter: JsonSplitter, maxBytes: number): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    let read = 0;
    const stop = () => {
      incoming.off("data", onData);
      incoming.off("end", onEnd);
      incoming.off("error", onError);
      incoming.resume();
    };
    const onData = (chunk: Buffer) => {
      read += chunk.length;
      if (read > maxBytes) {
        stop();
        return reject(tooLarge(maxBytes));
      }
      let values: string[];
      try {
        values = splitter.push(chunk);
      } catch (err) {
        stop();
        return reject(err);
      }
      if (values.length === 0) return;
      stop();
      resolve(values[0]);
    };
    const onEnd = () => {
      stop();
      try {
        resolve(splitter.end()[0]);
      } catch (err) {
        reject(err);
      }
    };
    const onError = (err: Error) => {
      stop();
      reject(err);
    };
    incoming.on("data", onData);
    incoming.once("end", onEnd);
    incoming.once("error", onError);
  });
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
