/**
 * etcdserverpb.Auth on etcd's gateway paths (`grant`/`revoke` are UserGrantRole/UserRevokeRole under
 * /user and RoleGrantPermission/RoleRevokePermission under /role). /auth/status is etcd 3.5's path.
 */
import { Auth } from "../../../gen/etcdserverpb/rpc_pb.js";
import type { GatewayPath } from "./paths.js";

export const authPaths: GatewayPath[] = [
  { path: "/auth/enable", method: Auth.method.authEnable },
  { path: "/auth/disable", method: Auth.method.authDisable },
  { path: "/auth/status", method: Auth.method.authStatus },
  { path: "/auth/authenticate", method: Auth.method.authenticate },
  { path: "/auth/user/add", method: Auth.method.userAdd },
  { path: "/auth/user/get", method: Auth.method.userGet },
  { path: "/auth/user/list", method: Auth.method.userList },
  { path: "/auth/user/delete", method: Auth.method.userDelete },
  { path: "/auth/user/changepw", method: Auth.method.userChangePassword },
  { path: "/auth/user/grant", method: Auth.method.userGrantRole },
  { path: "/auth/user/revoke", method: Auth.method.userRevokeRole },
  { path: "/auth/role/add", method: Auth.method.roleAdd },
  { path: "/auth/role/get", method: Auth.method.roleGet },
  { path: "/auth/role/list", method: Auth.method.roleList },
  { path: "/auth/role/delete", method: Auth.method.roleDelete },
  { path: "/auth/role/grant", method: Auth.method.roleGrantPermission },
  { path: "/auth/role/revoke", method: Auth.method.roleRevokePermission },
];
