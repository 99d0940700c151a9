/**
 * The one registry of our services: `routes` runs once, and what it registers is kept so that every door
 * serves the very same service objects (per-service state such as the watch and lease hubs and the range
 * cache is never built twice): the Connect handlers' router, the JSON gateway's in-process transport, and
 * the unary implementations by request path, which the fast paths and the gateway call directly.
 */
import type { DescMessage, DescMethod, DescService, Message, MessageShape } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import type { CallerContext } from "../wire/caller.js";
import type { Draining } from "./draining.js";

export type Routes = (router: ConnectRouter) => void;

/**
 * A bidi RPC in the shape the fast path serves it (listener/fast/bidi.ts): the client's requests in,
 * batches of responses out, each batch written at once.
 */
export interface BidiMethod<I extends DescMessage, O extends DescMessage> {
  service: string;
  method: string;
  input: I;
  output: O;
  serve: (caller: CallerContext, requests: AsyncIterable<MessageShape<I>>) => AsyncIterable<MessageShape<O>[]>;
  /** A response's bytes; toBinary unless the RPC has a cheaper way (wire/watch-encoding.ts). */
  encode?: (message: MessageShape<O>) => Uint8Array;
}

export type UnaryImpl = (req: Message, ctx: CallerContext) => Promise<Message>;

export interface UnaryMethod {
  method: DescMethod;
  input: DescMessage;
  output: DescMessage;
  impl: UnaryImpl;
  labels: { grpc_type: "unary"; grpc_service: string; grpc_method: string };
}

export interface Registry {
  /** Registers every recorded service on `router` (a Connect router or an in-process transport's). */
  routes: Routes;
  /**
   * Unary methods by request path (`/etcdserverpb.KV/Range`), of the services named in `direct`: their
   * implementations need nothing of the call context but what CallerContext has.
   */
  unary: ReadonlyMap<string, UnaryMethod>;
}

/** `draining`: every streaming method registered ends with Unavailable when the proxy shuts down. */
export function registry(routes: Routes, direct: readonly DescService[], draining?: Draining): Registry {
  const wanted = new Set(direct.map((s) => s.typeName));
  const calls: ((router: ConnectRouter) => void)[] = [];
  const unary = new Map<string, UnaryMethod>();
  const recorder: ConnectRouter = {
    handlers: [],
    service(service: DescService, given: object, options?: object) {
      const impl = draining ? drainedStreams(service, given as Record<string, unknown>, draining) : given;
      calls.push((r) => r.service(service, impl, options));
      if (wanted.has(service.typeName)) recordUnary(service, impl as Record<string, unknown>, unary);
      return this;
    },
    rpc(method: DescMethod, given: unknown, options?: object) {
      const impl = draining && method.methodKind !== "unary" && typeof given === "function" ? drainedStream(given as (...args: unknown[]) => unknown, draining) : given;
      calls.push((r) => (r.rpc as (m: DescMethod, i: unknown, o?: object) => unknown)(method, impl, options));
      return this;
    },
  };
  routes(recorder);
  return {
    routes: (router) => {
      for (const register of calls) register(router);
    },
    unary,
  };
}

/** `impl` with each streaming method's responses passed through `draining`; unary methods as they are. */
function drainedStreams(service: DescService, impl: Record<string, unknown>, draining: Draining): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const method of service.methods) {
    const fn = impl[method.localName];
    if (typeof fn !== "function") continue;
    out[method.localName] = method.methodKind === "unary" ? fn.bind(impl) : drainedStream(fn.bind(impl) as (...args: unknown[]) => unknown, draining);
  }
  return out;
}

function drainedStream(fn: (...args: unknown[]) => unknown, draining: Draining): (...args: unknown[]) => AsyncIterable<unknown> {
  return (...args) => draining.stream(fn(...args) as AsyncIterable<unknown>);
}

function recordUnary(service: DescService, impl: Record<string, unknown>, into: Map<string, UnaryMethod>): void {
  for (const method of service.methods) {
    const fn = impl[method.localName];
    if (method.methodKind !== "unary" || typeof fn !== "function") continue;
    into.set(`/${service.typeName}/${method.name}`, {
      method,
      input: method.input,
      output: method.output,
      impl: fn.bind(impl) as UnaryImpl,
      labels: { grpc_type: "unary", grpc_service: service.typeName, grpc_method: method.name },
    });
  }
}
