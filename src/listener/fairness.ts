/**
 * --fairness on connect-es's handlers (connect-adapter.ts): a unary call that takes that path (compressed,
 * Connect GET, gRPC-Web text) is charged to its flow as the fast paths' are (services/seats.ts), so no
 * caller leaves its flow by compressing its requests. The connection rides in the call's context values.
 * With fairness off the interceptor passes each call on after one check of an unset hook.
 */
import { createContextKey, createContextValues, type ContextValues, type Interceptor } from "@connectrpc/connect";
import { UnaryCall } from "../services/invoke.js";
import type { Peer } from "../wire/flow.js";
import type { Req } from "./fast/exchange.js";

const PEER = createContextKey<Peer | undefined>(undefined);

/** The context values carrying the request's connection, when fairness is on. */
export function peerValues(req: Req): ContextValues | undefined {
  if (!UnaryCall.charge) return undefined;
  const values = createContextValues();
  values.set(PEER, req.socket ?? undefined);
  return values;
}

export const fairnessInterceptor: Interceptor = (next) => (req) => {
  const charge = UnaryCall.charge;
  if (charge && !req.stream) charge(req.header, req.contextValues.get(PEER), { grpc_service: req.service.typeName, grpc_method: req.method.name }, req.message);
  return next(req);
};
