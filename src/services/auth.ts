/** etcdserverpb.Auth: every RPC forwarded with the caller's token. */
import type { ServiceImpl } from "@connectrpc/connect";
import type { Auth } from "../../gen/etcdserverpb/rpc_pb.js";
import { authChanging } from "../upstream/kv/cache-invalidator.js";
import type { Upstream } from "../upstream/client/upstream.js";

export function authService(up: Upstream): ServiceImpl<typeof Auth> {
  const w = { readOnly: false };
  const r = { readOnly: true };
  return {
    // The range cache serves tokenless callers only while auth is off (cache-invalidator.ts). It stops
    // before the call is sent and again before etcd's answer goes back, so neither the client that
    // enabled auth nor anyone after it is served a tokenless answer from the cache.
    authEnable: async (req, ctx) => {
      authChanging(up);
      try {
        return await up.unary(ctx, (c, o) => c.auth.authEnable(req, o), w);
      } finally {
        authChanging(up);
      }
    },
    authDisable: (req, ctx) => up.unary(ctx, (c, o) => c.auth.authDisable(req, o), w),
    authStatus: (req, ctx) => up.unary(ctx, (c, o) => c.auth.authStatus(req, o), r),
    // Not read-only for retries: each Authenticate issues a new token and costs etcd a bcrypt.
    authenticate: (req, ctx) => up.unary(ctx, (c, o) => c.auth.authenticate(req, o), w),
    userAdd: (req, ctx) => up.unary(ctx, (c, o) => c.auth.userAdd(req, o), w),
    userGet: (req, ctx) => up.unary(ctx, (c, o) => c.auth.userGet(req, o), r),
    userList: (req, ctx) => up.unary(ctx, (c, o) => c.auth.userList(req, o), r),
    userDelete: (req, ctx) => up.unary(ctx, (c, o) => c.auth.userDelete(req, o), w),
    userChangePassword: (req, ctx) => up.unary(ctx, (c, o) => c.auth.userChangePassword(req, o), w),
    userGrantRole: (req, ctx) => up.unary(ctx, (c, o) => c.auth.userGrantRole(req, o), w),
    userRevokeRole: (req, ctx) => up.unary(ctx, (c, o) => c.auth.userRevokeRole(req, o), w),
    roleAdd: (req, ctx) => up.unary(ctx, (c, o) => c.auth.roleAdd(req, o), w),
    roleGet: (req, ctx) => up.unary(ctx, (c, o) => c.auth.roleGet(req, o), r),
    roleList: (req, ctx) => up.unary(ctx, (c, o) => c.auth.roleList(req, o), r),
    roleDelete: (req, ctx) => up.unary(ctx, (c, o) => c.auth.roleDelete(req, o), w),
    roleGrantPermission: (req, ctx) => up.unary(ctx, (c, o) => c.auth.roleGrantPermission(req, o), w),
    roleRevokePermission: (req, ctx) => up.unary(ctx, (c, o) => c.auth.roleRevokePermission(req, o), w),
  };
}
