/**
 * Cuts a byte stream of concatenated JSON values (`{…}{…}`, `{…}\n{…}`) into one text per value, as soon
 * as each value is complete, the way grpc-gateway's streaming decoder feeds a watch or keep-alive stream.
 * It only tracks nesting and strings; JSON.parse judges each value afterwards.
 */
import { Code, ConnectError } from "@connectrpc/connect";

/**
 * Deepest nesting accepted in one value. A request nests at most a few levels per txn; 1000 keeps the
 * recursive decoders far from the stack limit. Deeper: 400, the value is refused.
 */
const MAX_DEPTH = 1000;

const enum Kind { None, Container, String, Scalar }

const isSpace = (b: number) => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;
/** Bytes that end a bare scalar (number, true, false, null) at the top level. */
const endsScalar = (b: number) => isSpace(b) || b === 0x7b || b === 0x7d || b === 0x5b || b === 0x5d || b === 0x2c || b === 0x3a || b === 0x22;

export class JsonSplitter {
  /** Bytes of the value in progress from earlier chunks. Bounded by maxValueBytes: beyond it, push throws. */
  private parts: Uint8Array[] = [];
  private size = 0;
  private kind = Kind.None;
  private depth = 0;
  private inString = false;
  private escaped = false;
  private readonly decoder = new TextDecoder();

  /** @param maxValueBytes largest single value; a longer one is refused with ResourceExhausted (429). */
  constructor(private readonly maxValueBytes: number) {}

  /** The values completed by `chunk`, in order; an unfinished value is kept for the next chunk. */
  push(chunk: Uint8Array): string[] {
    const out: string[] = [];
    let start = this.kind === Kind.None ? -1 : 0;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      switch (this.kind) {
        case Kind.None:
          if (isSpace(b)) continue;
          start = i;
          if (b === 0x7b || b === 0x5b) {
            this.kind = Kind.Container;
            this.depth = 1;
          } else if (b === 0x22) {
            this.kind = Kind.String;
          } else if (b === 0x7d || b === 0x5d || b === 0x2c || b === 0x3a) {
            // A stray `}`, `]`, `,` or `:` is a value of its own, so that JSON.parse names it in the error.
            out.push(this.finish(chunk, start, i + 1));
            start = -1;
          } else {
            this.kind = Kind.Scalar;
          }
          continue;
        case Kind.String:
          if (this.escaped) this.escaped = false;
          else if (b === 0x5c) this.escaped = true;
          else if (b === 0x22) {
            out.push(this.finish(chunk, start, i + 1));
            start = -1;
          }
          continue;
        case Kind.Container:
          if (this.inString) {
            if (this.escaped) this.escaped = false;
            else if (b === 0x5c) this.escaped = true;
            else if (b === 0x22) this.inString = false;
          } else if (b === 0x22) {
            this.inString = true;
          } else if (b === 0x7b || b === 0x5b) {
            if (++this.depth > MAX_DEPTH) throw new ConnectError(`request JSON nests deeper than ${MAX_DEPTH} levels`, Code.InvalidArgument);
          } else if ((b === 0x7d || b === 0x5d) && --this.depth === 0) {
            out.push(this.finish(chunk, start, i + 1));
            start = -1;
          }
          continue;
        case Kind.Scalar:
          if (endsScalar(b)) {
            out.push(this.finish(chunk, start, i));
            start = -1;
            i--; // this byte starts the next value (or is space)
          }
          continue;
      }
    }
    if (start >= 0) this.keep(chunk.subarray(start));
    return out;
  }

  /**
   * The body ended: a bare scalar still open is complete, an object, array or string still open is
   * truncated (Go's decoder says "unexpected EOF", and so do we).
   */
  end(): string[] {
    if (this.kind === Kind.None) return [];
    if (this.kind === Kind.Scalar) return [this.finish(new Uint8Array(0), 0, 0)];
    throw new ConnectError("unexpected EOF", Code.InvalidArgument);
  }

  private keep(bytes: Uint8Array): void {
    this.size += bytes.length;
    if (this.size > this.maxValueBytes) throw tooLarge(this.maxValueBytes);
    // Copy: the caller may reuse its chunk buffer.
    this.parts.push(bytes.slice());
  }

  private finish(chunk: Uint8Array, from: number, to: number): string {
    const tail = chunk.subarray(from, to);
    if (this.size + tail.length > this.maxValueBytes) throw tooLarge(this.maxValueBytes);
    let bytes = tail;
    if (this.parts.length > 0) {
      bytes = new Uint8Array(this.size + tail.length);
      let at = 0;
      for (const p of this.parts) {
        bytes.set(p, at);
        at += p.length;
      }
      bytes.set(tail, at);
    }
    this.parts = [];
    this.size = 0;
    this.kind = Kind.None;
    this.depth = 0;
    this.inString = false;
    this.escaped = false;
    return this.decoder.decode(bytes);
  }
}

/**
 * A request body or one streamed request object over the gateway's bound. ResourceExhausted (429) is what
 * etcd's gateway answers when a request is over gRPC's size limit, so clients already handle it.
 */
export function tooLarge(maxBytes: number): ConnectError {
  return new ConnectError(`etcd-edge: request JSON larger than max (${maxBytes} bytes, 2 x --max-send-bytes)`, Code.ResourceExhausted);
}
