/** v3electionpb.Election: forwarded; Observe streams leader changes with the caller's token. */
import type { ServiceImpl } from "@connectrpc/connect";
import type { Election } from "../../gen/v3electionpb/v3election_pb.js";
import type { Upstream } from "../upstream/client/upstream.js";

export function electionService(up: Upstream): ServiceImpl<typeof Election> {
  return {
    // Campaign blocks until elected; the caller's deadline and cancellation reach etcd with it.
    campaign: (req, ctx) => up.unary(ctx, (c, o) => c.election.campaign(req, o), { readOnly: false }),
    proclaim: (req, ctx) => up.unary(ctx, (c, o) => c.election.proclaim(req, o), { readOnly: false }),
    leader: (req, ctx) => up.unary(ctx, (c, o) => c.election.leader(req, o), { readOnly: true }),
    observe: (req, ctx) => up.stream(ctx, (c, o) => c.election.observe(req, o)),
    resign: (req, ctx) => up.unary(ctx, (c, o) => c.election.resign(req, o), { readOnly: false }),
  };
}
