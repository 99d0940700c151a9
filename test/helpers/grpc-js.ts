/**
 * @grpc/grpc-js, the gRPC library under nearly every Node etcd client (the `etcd3` package among them),
 * driven by hand: grpc.Client's generic makeUnaryRequest / makeServerStreamRequest / makeBidiStreamRequest
 * with protobuf-es's toBinary/fromBinary and the generated schemas. A call's outcome is what such a client
 * sees: the decoded response, or the ServiceError's code, details (grpc-js decodes grpc-message with
 * decodeURI) and metadata.
 */
import { create, fromBinary, toBinary, type DescMethod, type DescMethodBiDiStreaming, type DescMethodServerStreaming, type DescMethodUnary, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";

interface Tap { teardown(fn: () => unknown): void }

/** A failed call as grpc-js reports it. */
export interface GrpcJsError {
  code: grpc.status;
  /** grpc-message after grpc-js's decodeURI. */
  details: string;
  /** The response metadata grpc-js hands over with the status (trailers, or headers of a trailers-only answer). */
  metadata: Record<string, string[]>;
}

export type Outcome<T> = { ok: true; res: T } | { ok: false; err: GrpcJsError };

export interface CallOptions {
  /** Request metadata, e.g. { token: "…" }. */
  metadata?: Record<string, string>;
  timeoutMs?: number;
}

/** A grpc-js client of `address` (host:port, plaintext), closed when the test ends. */
export function grpcJsClient(t: Tap, address: string): grpc.Client {
  const client = new grpc.Client(address, grpc.credentials.createInsecure(), {
    // etcd accepts requests up to 1.5 MiB + 512 KiB of gRPC overhead; grpc-js would refuse nothing it sends
    // anyway (-1), this only makes the intent explicit for the oversized-request cases.
    "grpc.max_send_message_length": -1,
    "grpc.max_receive_message_length": 64 * 1024 * 1024,
  });
  t.teardown(() => client.close());
  return client;
}

export const pathOf = (m: DescMethod) => `/${m.parent.typeName}/${m.name}`;

function metadataOf(o: CallOptions): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(o.metadata ?? {})) md.set(k, v);
  return md;
}

const deadline = (o: CallOptions) => ({ deadline: Date.now() + (o.timeoutMs ?? 10_000) });

function errorOf(err: grpc.ServiceError | grpc.StatusObject): GrpcJsError {
  const metadata: Record<string, string[]> = {};
  const md = err.metadata?.toJSON() ?? {};
  for (const [k, vs] of Object.entries(md)) metadata[k] = vs.map((v) => (typeof v === "string" ? v : `base64:${v.toString("base64")}`));
  return { code: err.code, details: err.details, metadata };
}

/** One unary call of `method` (its path is /package.Service/Method). */
export function unary<M extends DescMethodUnary>(client: grpc.Client, method: M, req: MessageInitShape<M["input"]>, o: CallOptions = {}): Promise<Outcome<MessageShape<M["output"]>>> {
  const input = method.input;
  const output = method.output;
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      pathOf(method),
      (m: MessageShape<M["input"]>) => Buffer.from(toBinary(input, m)),
      (b: Buffer) => fromBinary(output, b) as MessageShape<M["output"]>,
      create(input, req) as MessageShape<M["input"]>,
      metadataOf(o),
      deadline(o),
      (err, res) => resolve(err ? { ok: false, err: errorOf(err) } : { ok: true, res: res! }),
    );
  });
}

/** A unary call to any path with a raw body, answered with raw bytes (for methods no schema has). */
export function rawUnary(client: grpc.Client, path: string, body: Uint8Array, o: CallOptions = {}): Promise<Outcome<Uint8Array>> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(path, (b: Uint8Array) => Buffer.from(b), (b: Buffer) => new Uint8Array(b), body, metadataOf(o), deadline(o),
      (err, res) => resolve(err ? { ok: false, err: errorOf(err) } : { ok: true, res: res! }));
  });
}

/** A server-streaming call: its first message, after which the call is cancelled; or the error it ended with. */
export function firstOfServerStream<M extends DescMethodServerStreaming>(client: grpc.Client, method: M, req: MessageInitShape<M["input"]>, o: CallOptions = {}): Promise<Outcome<MessageShape<M["output"]>>> {
  const input = method.input;
  const output = method.output;
  return new Promise((resolve) => {
    let settled = false;
    const call = client.makeServerStreamRequest(
      pathOf(method),
      (m: MessageShape<M["input"]>) => Buffer.from(toBinary(input, m)),
      (b: Buffer) => fromBinary(output, b) as MessageShape<M["output"]>,
      create(input, req) as MessageShape<M["input"]>,
      metadataOf(o),
      deadline(o),
    );
    call.on("data", (res: MessageShape<M["output"]>) => {
      if (settled) return;
      settled = true;
      resolve({ ok: true, res });
      call.cancel();
    });
    call.on("error", (err: grpc.ServiceError) => {
      if (settled) return;
      settled = true;
      resolve({ ok: false, err: errorOf(err) });
    });
    call.on("status", (s: grpc.StatusObject) => {
      if (settled) return;
      settled = true;
      resolve(s.code === grpc.status.OK ? { ok: false, err: { ...errorOf(s), details: `stream ended OK with no message (${s.details})` } } : { ok: false, err: errorOf(s) });
    });
  });
}

/**
 * A bidi call with one request: the first reply, after which the request side is half-closed and the call
 * cancelled; or the error it ended with.
 */
export function firstOfBidi<M extends DescMethodBiDiStreaming>(client: grpc.Client, method: M, req: MessageInitShape<M["input"]>, o: CallOptions = {}): Promise<Outcome<MessageShape<M["output"]>>> {
  const input = method.input;
  const output = method.output;
  return new Promise((resolve) => {
    let settled = false;
    const call = client.makeBidiStreamRequest(
      pathOf(method),
      (m: MessageShape<M["input"]>) => Buffer.from(toBinary(input, m)),
      (b: Buffer) => fromBinary(output, b) as MessageShape<M["output"]>,
      metadataOf(o),
      deadline(o),
    );
    call.on("data", (res: MessageShape<M["output"]>) => {
      if (settled) return;
      settled = true;
      resolve({ ok: true, res });
      call.end();
      call.cancel();
    });
    call.on("error", (err: grpc.ServiceError) => {
      if (settled) return;
      settled = true;
      resolve({ ok: false, err: errorOf(err) });
    });
    call.on("status", (s: grpc.StatusObject) => {
      if (settled) return;
      settled = true;
      resolve({ ok: false, err: { ...errorOf(s), details: `stream ended (${s.code}) with no message: ${s.details}` } });
    });
    call.write(create(input, req) as MessageShape<M["input"]>);
  });
}

export { grpc };
