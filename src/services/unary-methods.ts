/**
 * The unary RPC implementations of our services, looked up by request path, for the callers that skip
 * connect-es's generic machinery: the lean listener path (listener/unary.ts) and the JSON gateway
 * (http/gateway/). They call the very same implementation objects the Connect handlers serve.
 */
import type { DescMessage, DescMethod, DescService, Message } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import type { CallerContext } from "../upstream/upstream.js";

export type UnaryImpl = (req: Message, ctx: CallerContext) => Promise<Message>;

export interface UnaryMethod {
  method: DescMethod;
  input: DescMessage;
  output: DescMessage;
  impl: UnaryImpl;
  labels: { grpc_type: "unary"; grpc_service: string; grpc_method: string };
}

/**
 * The unary methods of `services` that `routes` registers, by request path. Services are asked for by
 * name: their implementations must need nothing of the call context but what CallerContext has.
 */
export function unaryMethods(routes: (router: ConnectRouter) => void, services: readonly DescService[]): Map<string, UnaryMethod> {
  const wanted = new Set(services.map((s) => s.typeName));
  const methods = new Map<string, UnaryMethod>();
  const recorder = {
    handlers: [],
    service(service: DescService, impl: Record<string, unknown>) {
      if (!wanted.has(service.typeName)) return recorder;
      for (const method of service.methods) {
        const fn = impl[method.localName];
        if (method.methodKind !== "unary" || typeof fn !== "function") continue;
        methods.set(`/${service.typeName}/${method.name}`, {
          method,
          input: method.input,
          output: method.output,
          impl: fn.bind(impl) as UnaryImpl,
          labels: { grpc_type: "unary", grpc_service: service.typeName, grpc_method: method.name },
        });
      }
      return recorder;
    },
    rpc() {
      return recorder;
    },
  };
  routes(recorder as unknown as ConnectRouter);
  return methods;
}
