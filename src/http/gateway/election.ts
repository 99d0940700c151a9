/** v3electionpb.Election on etcd's gateway paths; /election/observe streams one line per leader change. */
import { Election } from "../../../gen/v3electionpb/v3election_pb.js";
import type { GatewayPath } from "./paths.js";

export const electionPaths: GatewayPath[] = [
  { path: "/election/campaign", method: Election.method.campaign },
  { path: "/election/proclaim", method: Election.method.proclaim },
  { path: "/election/leader", method: Election.method.leader },
  { path: "/election/observe", method: Election.method.observe },
  { path: "/election/resign", method: Election.method.resign },
];
