/**
 * gRPC-Web's text mode (wire.md §4): the same frames as binary gRPC-Web, base64-encoded both ways. Google's
 * grpc-web JavaScript client uses it by default. connect-es does not serve it, so the adapter turns such a
 * request into binary gRPC-Web for the handlers and base64-encodes their answer, unary and streams alike.
 */
import { ConnectError, Code } from "@connectrpc/connect";

const TEXT_TYPE = /^application\/grpc-web-text(\+proto)?(;.*)?$/;

/** The binary content type for a text-mode request, or undefined when `contentType` is not text mode. */
export function binaryTypeOfText(contentType: string | undefined): string | undefined {
  if (contentType === undefined) return undefined;
  const m = TEXT_TYPE.exec(contentType);
  return m ? `application/grpc-web+proto` : undefined;
}

/**
 * Decodes a base64 request body as it arrives. A sender may pad each chunk it wrote ("…=" then more), so
 * the text is decoded in whole 4-character groups, a padded group ending one segment.
 */
export async function* decodeBase64(body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  let carry = "";
  for await (const chunk of body) {
    carry += Buffer.from(chunk).toString("latin1").replace(/\s+/g, "");
    const whole = carry.length - (carry.length % 4);
    if (whole === 0) continue;
    yield decodeGroups(carry.slice(0, whole));
    carry = carry.slice(whole);
  }
  if (carry.length > 0) throw new ConnectError("grpc-web-text: the body is not base64 (length not a multiple of 4)", Code.InvalidArgument);
}

function decodeGroups(text: string): Uint8Array {
  if (!/^[A-Za-z0-9+/=]*$/.test(text)) throw new ConnectError("grpc-web-text: the body is not base64", Code.InvalidArgument);
  // Buffer.from stops at the first padding; decode each padded segment on its own.
  const parts: Buffer[] = [];
  let from = 0;
  for (let i = 0; i < text.length; i += 4) {
    if (text[i + 3] === "=") {
      parts.push(Buffer.from(text.slice(from, i + 4), "base64"));
      from = i + 4;
    }
  }
  if (from < text.length) parts.push(Buffer.from(text.slice(from), "base64"));
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/** Each chunk of the answer base64-encoded on its own (padded), as the text mode's readers expect. */
export async function* encodeBase64(body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  for await (const chunk of body) yield Buffer.from(Buffer.from(chunk).toString("base64"), "latin1");
}
