/**
 * Raw RPCs over node:http2, for tests that must choose every byte a client sends (garbage bodies, truncated
 * frames) and see every byte of the answer: headers, body and trailers apart.
 */
import type * as http2 from "node:http2";

/** 1 flag byte (uncompressed) + 4 byte big-endian length + payload: gRPC's and gRPC-Web's message frame. */
export function frame(payload: Uint8Array, flag = 0): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(flag, 0);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

/** An HTTP/2 frame written by hand (tests that speak HTTP/2 on a raw socket): 9-byte header, then the payload. */
export function h2Frame(type: number, flags: number, streamId: number, payload: Uint8Array = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

export interface RawAnswer {
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
  trailers: http2.IncomingHttpHeaders;
}

/** One raw HTTP/2 request on `session`: what a client whose bytes we choose sees, headers and trailers apart. */
export function raw(session: http2.ClientHttp2Session, path: string, headers: http2.OutgoingHttpHeaders, body: Uint8Array): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ":method": "POST", ":path": path, ...headers });
    let resHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    req.on("response", (h) => { resHeaders = h; });
    req.on("trailers", (h) => { trailers = h; });
    req.on("data", (d: Buffer) => chunks.push(d));
    req.on("end", () => resolve({ headers: resHeaders, body: Buffer.concat(chunks), trailers }));
    req.on("error", reject);
    req.setTimeout(10_000, () => { req.close(); reject(new Error(`no answer to ${path} within 10 s`)); });
    req.end(body);
  });
}

/** The gRPC status of a raw answer: from trailers, or from the headers of a trailers-only answer. */
export const grpcStatus = (a: RawAnswer) => ({ status: a.trailers["grpc-status"] ?? a.headers["grpc-status"], message: decodeURIComponent(String(a.trailers["grpc-message"] ?? a.headers["grpc-message"] ?? "")) });

/** The trailer frame of a gRPC-Web answer (flag 0x80), parsed, or the status in its headers. */
export function grpcWebStatus(a: RawAnswer): { status: string | undefined; message: string } {
  let at = 0;
  while (at + 5 <= a.body.length) {
    const flag = a.body.readUInt8(at);
    const len = a.body.readUInt32BE(at + 1);
    if (flag & 0x80) {
      const fields = Object.fromEntries(a.body.subarray(at + 5, at + 5 + len).toString().split("\r\n").filter(Boolean).map((l) => {
        const i = l.indexOf(":");
        return [l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim()];
      }));
      return { status: fields["grpc-status"], message: decodeURIComponent(fields["grpc-message"] ?? "") };
    }
    at += 5 + len;
  }
  return { status: a.headers["grpc-status"] as string | undefined, message: decodeURIComponent(String(a.headers["grpc-message"] ?? "")) };
}

/** The end-of-stream message of a Connect streaming answer (flag 0x02, JSON). */
export function connectEndStream(a: RawAnswer): unknown {
  let at = 0;
  while (at + 5 <= a.body.length) {
    const flag = a.body.readUInt8(at);
    const len = a.body.readUInt32BE(at + 1);
    if (flag & 0x02) return JSON.parse(a.body.subarray(at + 5, at + 5 + len).toString());
    at += 5 + len;
  }
  return undefined;
}
